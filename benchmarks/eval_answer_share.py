"""What a policy that gives one answer whatever the cue scores on a memory_len run's evaluation episodes.

`r2i.evaluation.evaluate` seeds its envs from the run's seed, so a run's every round plays the same episodes, and
their cues need not split 50/50: answer 0 is right in a seed-dependent share of them, answer 1 in the rest. A round
inside [share, 1 − share] may be a policy that ignores the cue; one below the band reads the cue with the wrong sign.
Plays `episodes` evaluation episodes (as `evaluate` counts them) answering 0 at every step and prints, per seed, the
success of that policy (docs/notes.md, "Seed 1 solved 1,024 too"):

    python benchmarks/eval_answer_share.py [memory_length=1024] [seeds=0,1,2,3,4] [episodes=100] [eval_envs=50]
"""

from __future__ import annotations

import json
import sys

import numpy as np

from r2i.envs import VectorDriver, make_specs
from r2i.evaluation import EVAL_SEED_OFFSET


def answer0_success(seed: int, memory_length: int, episodes: int, eval_envs: int) -> float:
    num = max(1, min(eval_envs, episodes))
    specs = make_specs("bsuite:memory_len/0", num, seed + EVAL_SEED_OFFSET, memory_length=memory_length)
    action = np.zeros((num, 2), np.float32)
    action[:, 0] = 1.0
    rewards: list[float] = []
    started = num
    active = np.ones(num, bool)
    with VectorDriver(specs, False) as driver:
        driver.reset()
        while active.any():
            obs = driver.step(action)
            for i in np.flatnonzero(obs["is_last"] & active):
                rewards.append(float(obs["reward"][i]))
                if started < episodes:
                    started += 1
                else:
                    active[i] = False
    return float(np.mean(np.array(rewards) > 0))


if __name__ == "__main__":
    args = sys.argv[1:] + [None] * 4
    length = int(args[0] or 1024)
    seeds = [int(s) for s in (args[1] or "0,1,2,3,4").split(",")]
    episodes, eval_envs = int(args[2] or 100), int(args[3] or 50)
    for seed in seeds:
        share = answer0_success(seed, length, episodes, eval_envs)
        print(json.dumps({"memory_length": length, "seed": seed, "episodes": episodes, "answer0_success": share,
                          "constant_answer_band": [round(min(share, 1 - share), 2), round(max(share, 1 - share), 2)]}))
