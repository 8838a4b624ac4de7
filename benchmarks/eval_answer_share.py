"""What a policy that gives one answer whatever the cue scores on a memory_len run's evaluation episodes.

`r2i.evaluation.evaluate` seeds its envs from the run's seed, so a run's every round plays the same episodes, and
their cues need not split 50/50: answer 0 is right in a seed-dependent share of them, answer 1 in the rest. A round
inside [share, 1 − share] may be a policy that ignores the cue; one below the band reads the cue with the wrong sign.
Runs `evaluate` itself (the `bsuite_cpu` preset's evaluation envs, `episodes` episodes counted as a round counts
them) with a policy that answers 0 at every step, and prints, per seed, its success (docs/notes.md, "Seed 1 solved
1,024 too"):

    python benchmarks/eval_answer_share.py [memory_length=1024] [seeds=0,1,2,3,4] [episodes=100]
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np

from r2i.config import make_config
from r2i.evaluation import evaluate


class AnswerZero:
    """The agent interface `evaluate` acts through, with action 0 (a one-hot of 2) at every step."""

    def initial(self, num: int) -> None:
        return None

    def act(self, params, carry, obs, key, mode):
        action = np.zeros((len(obs["is_first"]), 2), np.float32)
        action[:, 0] = 1.0
        return carry, action


def answer0_success(seed: int, memory_length: int, episodes: int) -> float:
    config = make_config("bsuite_cpu", {"seed": seed, "env.id": "bsuite:memory_len/0",
                                        "env.options": {"memory_length": memory_length}})
    return evaluate(AnswerZero(), None, config, episodes, "greedy", jax.random.key(0))["eval/success"]


if __name__ == "__main__":
    args = sys.argv[1:] + [None] * 3
    length = int(args[0] or 1024)
    seeds = [int(s) for s in (args[1] or "0,1,2,3,4").split(",")]
    episodes = int(args[2] or 100)
    for seed in seeds:
        share = answer0_success(seed, length, episodes)
        print(json.dumps({"memory_length": length, "seed": seed, "episodes": episodes, "answer0_success": share,
                          "constant_answer_band": [round(min(share, 1 - share), 2), round(max(share, 1 - share), 2)]}))
