"""benchmarks/frontier.sh: every job of its lanes (and the parked ones) is a valid `r2i sweep` whose runs all build a
config, so that a typo in a job fails here and not hours into a session ('job X failed; going on with the next')."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from r2i.cli import main

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "frontier.sh"


def _frontier(*args: str) -> str:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, check=True).stdout


def test_every_job_is_a_sweep_whose_runs_build_a_config(tmp_path, capsys):
    names = _frontier("jobs").split()
    assert len(names) > 20 and len(names) == len(set(names)), f"a job listed twice: {names}"
    for name in names:
        # The job's roots, carry folders and CSVs moved under tmp_path: nothing of benchmarks/ is read or written.
        args = shlex.split(_frontier("args", name).replace(str(SCRIPT.parent), str(tmp_path)))
        assert str(tmp_path) in " ".join(args), f"{name}: its paths are not under benchmarks/"
        # --status builds every planned run's config (unknown keys, bad values and bad settings are refused).
        assert main(["sweep", *args, "--status"]) == 0, f"frontier.sh job {name}: {capsys.readouterr()}"
        table = capsys.readouterr().out.splitlines()
        assert len(table) >= 2 and all("not started" in row for row in table[1:]), f"{name}: {table}"
    assert subprocess.run(["bash", str(SCRIPT), "args", "no-such-job"], capture_output=True).returncode != 0
