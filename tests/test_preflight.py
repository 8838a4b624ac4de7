"""Preflight: a replay is sized by what the run will store, min(replay.capacity, run.steps)."""

import re

import numpy as np
import pytest

from r2i.config import make_config
from r2i.errors import ConfigError
from r2i.preflight import available_ram, check_replay_memory

# One 64×64×3 uint8 image per step, ≈ 12 KiB: 10¹⁰ steps are far beyond any machine's RAM or disk.
SPEC = {"image": ((64, 64, 3), np.uint8), "action": ((4,), np.float32), "reward": ((), np.float32)}


@pytest.mark.parametrize("backend", ["memory", "disk"])
def test_a_short_run_of_a_huge_replay_asks_only_for_what_it_stores(tmp_path, backend):
    short = make_config("tiny", {"logdir": str(tmp_path), "replay.backend": backend,
                                 "replay.capacity": 10**10, "run.steps": 1000})
    check_replay_memory(SPEC, short)  # 1,000 images fit anywhere


@pytest.mark.parametrize("backend, where", [("memory", "RAM"), ("disk", "disk")])
def test_a_long_run_of_a_huge_replay_is_refused_naming_the_field(tmp_path, backend, where):
    long = make_config("tiny", {"logdir": str(tmp_path), "replay.backend": backend,
                                "replay.capacity": 10**10, "run.steps": 10**12})
    with pytest.raises(ConfigError, match=f"replay.capacity=10,000,000,000 steps needs .* of {where}"):
        check_replay_memory(SPEC, long)
    capped = make_config("tiny", {"logdir": str(tmp_path), "replay.backend": backend,
                                  "replay.capacity": 10**12, "run.steps": 10**10})
    with pytest.raises(ConfigError, match=r"run.steps=10,000,000,000 steps of replay \(replay.capacity") as error:
        check_replay_memory(SPEC, capped)
    if backend == "memory":  # the suggested capacity must itself fit: sized per stored step, not per capacity slot
        fits = int(re.search(r"≈ ([\d,]+) steps fit", str(error.value)).group(1).replace(",", ""))
        assert fits * 64 * 64 * 3 <= available_ram(), str(error.value)
