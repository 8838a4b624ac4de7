"""The conv path learns a memory task end to end: `test_learning.py`'s task and sizes, drawn as 16×16 images.

`r2i:memory_length/3` with `image: true, size: 16` shows the cue as an 8×8 coloured square on the first frame only,
so the answer three steps later needs the conv encoder to see the colour, the sequence model to carry it and the
conv decoder's reconstruction loss to shape the latent (a 4-channel conv, two stride-2 stages to the 4×4 grid).
At 64×64 the same task needs 3,500–5,500 updates of a costlier conv (benchmarks/README.md, "Learning from pixels");
at 16×16 an update costs about what the vector test's does. The actor's entropy bonus is the memory sweeps' 1e-2:
with the preset's 3e-4 the actor settled on one answer within 1,500 env steps, before the world model had learned the
cue, and stayed there (benchmarks/README.md, "A pixel memory test for the suite"). Of three seeds with a 6,000-step
budget one solved only at its last evaluation, so the budget here is 8,000: a run that solves stops at its first
evaluation ≥ 0.9 and pays nothing for it. Chance is 0.5 and the same bounds as the vector test hold
(P(≥ 0.8 of 50 | 0.5) < 1e-5). 270 s on a 2-core AMD EPYC beside the vector test (210 s), which xdist starts at the
same time (tests/conftest.py).
"""

import json
import subprocess
import sys

import pytest
from _xla import subprocess_env
from test_learning import LEARN

PIXELS = {
    **LEARN, "env.options": "{image: true, size: 16}", "model.cnn_depth": 4, "behavior.entropy": 1e-2,
    "run.steps": 8000, "run.eval_every": 500,
}  # fmt: skip


@pytest.mark.slow
def test_s3m_agent_learns_a_memory_task_from_pixels(tmp_path):
    cmd = [sys.executable, "-m", "r2i.cli", "train", "--logdir", str(tmp_path / "run"), "--quiet", "--json",
           *(f"{key}={value}" for key, value in PIXELS.items())]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(optimised=True), timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "size: 16" in config and "image: true" in config, config  # the run saw pixels, not the vector task
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["eval/episodes"] == 50
    assert result["eval/success"] >= 0.8, result
    assert result["solved"] == (result["env_steps"] < PIXELS["run.steps"]), result
