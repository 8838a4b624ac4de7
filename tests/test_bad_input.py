"""Bad input, table-driven: each row is a command line, the one-line message it must print, exit code 2, and the
proof that nothing was written or lost (the directory tree is the same before and after).

Every row calls the CLI's `main()` in-process and fails before a model is built, so the table is cheap; add a row for
every new input that once slipped through.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from r2i import cli
from r2i.runlock import RunLock


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root → file content (None for directories)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = None
        for name in filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = Path(path).read_bytes()
    return out


def _file(tmp: Path) -> None:
    (tmp / "afile").write_text("not a directory\n")


def _run_dir(tmp: Path) -> None:
    """A run directory with a few files, to prove that refused commands leave them alone."""
    run = tmp / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 4, "time": 0.0}\n')


TINY = ["--preset", "tiny"]

# (id, argv with {tmp} for the test's directory, setup(tmp) or None, a fragment of the one-line message)
CASES = [
    ("steps-below-prefill", ["train", "--logdir", "{tmp}/run", "--steps", "1500"], None,
     "run.steps=1,500 is not above run.prefill=2,000: the run would only act randomly and do no updates"),
    ("window-longer-than-data", ["train", "--logdir", "{tmp}/run", "--steps", "3000", "run.batch_length=1024"], None,
     "run.batch_length=1024 is longer than the 750 steps each of the env.num_envs=4 envs collects"),
    ("train-ratio-too-low", ["train", "--logdir", "{tmp}/run", "--steps", "2100", "run.train_ratio=0.001"], None,
     "gives less than one update"),
    ("nan-learning-rate", ["train", "--logdir", "{tmp}/run", "optim.model_lr=nan"], None,
     "config key 'optim.model_lr' must be a finite number, got nan"),
    ("inf-clip", ["train", "--logdir", "{tmp}/run", "optim.actor_clip=inf"], None,
     "config key 'optim.actor_clip' must be a finite number, got inf"),
    ("nan-clip", ["train", "--logdir", "{tmp}/run", "--optim.critic_clip", "nan"], None,
     "config key 'optim.critic_clip' must be a finite number"),
    ("one-class-latents", ["train", "--logdir", "{tmp}/run", "model.classes=1"], None,
     "model.classes must be >= 2"),
    ("imag-starts-above-batch", ["train", "--logdir", "{tmp}/run", "behavior.imag_starts=5000"], None,
     "behavior.imag_starts=5000 exceeds the run.batch_size × run.batch_length = 1024"),
    ("replay-larger-than-ram", ["train", "--logdir", "{tmp}/run", "replay.capacity=10000000000000", "run.steps=10000000000000", *TINY], None,
     "replay.capacity=10,000,000,000,000 steps needs"),
    ("logdir-is-a-file", ["train", "--logdir", "{tmp}/afile", *TINY], _file,
     "is a file, not a directory"),
    ("logdir-under-a-file", ["train", "--logdir", "{tmp}/afile/run", *TINY], _file,
     "a part of that path is a file"),
    ("unknown-env-leaves-no-logdir", ["train", "--logdir", "{tmp}/new/run", "--env", "r2i:memory_lenght/3"], None,
     "memory_length"),
    ("run-dir-in-use", ["train", "--logdir", "{tmp}/run", *TINY], "lock",
     f"is in use by process {os.getpid()} on"),
    ("doctor-takes-train-overrides", ["doctor", "model.classes=1"], None, "model.classes must be >= 2"),
    ("check-env-zero-episodes", ["check-env", "r2i:memory_length/3", "--episodes", "0"], None,
     "--episodes must be >= 1, got 0"),
    ("eval-zero-episodes", ["eval", "--logdir", "{tmp}/run", "--episodes", "0"], _run_dir,
     "--episodes must be >= 1, got 0"),
    ("eval-not-a-run", ["eval", "--logdir", "{tmp}/run"], _run_dir, "is not an r2i run directory"),
    ("bsuite-option-breaks-env", ["check-env", "bsuite:memory_len/0", "memory_length=-3"], None,
     "bsuite:memory_len/0: the env.options (memory_length=-3) give an environment bsuite cannot run"),
    ("sweep-unknown-model", ["sweep", "--suite", "memory_len", "--settings", "10", "--models", "lstm"], None,
     "--models: unknown model 'lstm'; use s3m, gru"),
    ("sweep-setting-not-a-number", ["sweep", "--suite", "memory_len", "--settings", "ten"], None,
     "--settings of --suite memory_len are integers, got 'ten'"),
    ("sweep-negative-setting", ["sweep", "--suite", "memory_len", "--settings", "-3"], None,
     "--settings of --suite memory_len must be >= 1, got -3"),
    ("sweep-seeds-not-numbers", ["sweep", "--suite", "memory_len", "--settings", "10", "--seeds", "a,b"], None,
     "--seeds must be comma-separated integers"),
    ("sweep-unknown-suite", ["sweep", "--suite", "memory", "--settings", "10"], None,
     "--suite must be memory_len, discounting_chain or popgym"),
    ("sweep-bad-override-before-any-run", ["sweep", "--suite", "memory_len", "--settings", "10",
                                           "model.ssm.layer=3"], None,
     "sweep run memory_len/10/s3m/seed0: unknown config key 'model.ssm.layer'"),
    ("sweep-bad-bsuite-option", ["sweep", "--suite", "memory_len", "--settings", "10", "--models", "gru",
                                 "env.options={memory_length: -3}"], None, "memory_length=-3"),
    ("sweep-zero-jobs", ["sweep", "--suite", "memory_len", "--settings", "10", "--jobs", "0"], None,
     "--jobs must be >= 1"),
]  # fmt: skip

if os.geteuid() != 0:  # root may write anywhere: these only fail for other users
    def _read_only(tmp: Path) -> None:
        (tmp / "ro").mkdir()
        (tmp / "ro").chmod(0o500)

    CASES += [
        ("logdir-read-only", ["train", "--logdir", "{tmp}/ro", *TINY], _read_only, "is not readable and writable"),
        ("logdir-below-read-only", ["train", "--logdir", "{tmp}/ro/run", *TINY], _read_only,
         "cannot create --logdir"),
    ]


@pytest.mark.parametrize("argv, setup, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, setup, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # commands with default output paths (sweep's runs and CSV) write under tmp_path
    lock = None
    if setup == "lock":
        _run_dir(tmp_path)
        lock = RunLock(tmp_path / "run").acquire()  # another trainer holds the run
    elif setup is not None:
        setup(tmp_path)
    before = _tree(tmp_path)
    try:
        code = cli.main([arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    finally:
        if lock is not None:
            lock.release()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("r2i: error: "), err
    assert message in lines[0], lines[0]
    assert _tree(tmp_path) == before, "a refused command wrote or removed files"


def test_every_case_has_a_unique_id():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
