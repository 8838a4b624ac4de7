"""Which part of an agent carries a policy's change between two checkpoints of one run: the actor, the S5 layers or the
rest of the world model? And how far the S5 modes' phases turned at a lag in between.

Written for docs/notes.md ("Seed 1 solved 1,024 too"), where greedy rounds of a memory_len run swung between 0.15 and
1.00 within tens of updates. Every evaluation runs the run's own 100 evaluation episodes (`r2i.evaluation.evaluate`,
the same fixed episodes as its rounds) and prints one JSON line:

    python benchmarks/policy_swap.py modes RUN STEP            # STEP's policy on the mode, greedy, sampling (keys 0, 1)
    python benchmarks/policy_swap.py swap RUN STEP_A STEP_B    # A's and B's parameters mixed by part, on the mode
    python benchmarks/policy_swap.py phase RUN STEP_A STEP_B N # per S5 layer: modes that keep ≥ 0.05 of a cue over N
                                                                # steps, and how far each turned its phase at lag N

The parts are the params tree's top-level groups: `actor`, `critic`, `ssm` (every S5 layer's Λ, B̃, C̃, D, log Δ) and
`model` (encoder, decoders, heads, and the sequence model's layers around the S5 stack). Checkpoints are read with
`r2i.api.load`, which leaves the run directory as it is.
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np
from ssm_timescales import decay_rate, ssm_layers

from r2i import allocator
from r2i.api import load
from r2i.evaluation import evaluate
from r2i.runtime import source_commit

COMMIT = source_commit()  # recorded in every line


def success(policy, params, mode: str, key: int) -> float:
    return evaluate(policy.agent, params, policy.config, 100, mode, jax.random.key(key))["eval/success"]


def modes(run: str, step: int) -> None:
    policy = load(run, step)
    for mode, keys in (("deterministic", (0,)), ("greedy", (0, 1)), ("sample", (0, 1))):
        for key in keys:
            print(json.dumps({"commit": COMMIT, "run": run, "env_steps": step, "mode": mode, "key": key,
                              "success": success(policy, policy.params, mode, key)}), flush=True)


def swap(run: str, step_a: int, step_b: int) -> None:
    a, b = load(run, step_a), load(run, step_b)
    combos = {"all_a": a.params, "all_b": b.params}
    for part in ("actor", "ssm"):
        combos[f"{part}_a_rest_b"] = {**b.params, part: a.params[part]}
        combos[f"{part}_b_rest_a"] = {**a.params, part: b.params[part]}
    for name, params in combos.items():
        print(json.dumps({"commit": COMMIT, "run": run, "a": step_a, "b": step_b, "mode": "deterministic",
                          "params": name, "success": success(b, params, "deterministic", 0)}), flush=True)


def lam_bar(layer: dict[str, np.ndarray]) -> np.ndarray:
    """Λ̄ = exp(Δ·Λ) (P,) complex128 (ZOH), its decay −Re(Λ)·Δ from `ssm_timescales.decay_rate` (Re(Λ) clipped as
    r2i.ssm clips it)."""
    return np.exp(-decay_rate(layer) + 1j * np.exp(layer["log_step"]) * layer["lam_im"])


def phase(run: str, step_a: int, step_b: int, lag: int) -> None:
    a, b = load(run, step_a), load(run, step_b)
    if a.config.model.sequence != "s3m":
        raise SystemExit(f"{run}: model.sequence is {a.config.model.sequence}; only S3M has S5 modes")
    for index, (la, lb) in enumerate(zip(map(lam_bar, ssm_layers(a.params)), map(lam_bar, ssm_layers(b.params)))):
        kept = np.abs(la) ** lag  # what of a cue the mode keeps over `lag` steps
        turned = np.abs(np.angle((lb / la) ** lag))  # the phase the cue's image turned at that lag, in [0, π]
        sel = kept >= 0.05
        print(json.dumps({"commit": COMMIT, "run": run, "a": step_a, "b": step_b, "lag": lag, "layer": index,
                          "modes": int(la.size), "kept_modes": int(sel.sum()),
                          "turned_rad": [round(float(x), 2) for x in turned[sel]],
                          "kept": [round(float(x), 2) for x in kept[sel]]}), flush=True)


if __name__ == "__main__":
    allocator.configure()
    command, args = sys.argv[1], sys.argv[2:]
    if command == "modes":
        modes(args[0], int(args[1]))
    elif command == "swap":
        swap(args[0], int(args[1]), int(args[2]))
    elif command == "phase":
        phase(args[0], int(args[1]), int(args[2]), int(args[3]))
    else:
        raise SystemExit(__doc__)
