"""Time the GRU's whole update at batch 1 with the adjoint scan's loops unrolled k steps per iteration, against 1.

At B = 1 the GRU world model's filter runs `r2i.scan_grad.adjoint_scan`, whose forward and reverse loops make a few
small kernels per step. This script compiles the same
update (the `bsuite_cpu` preset at the frontier's settings: the actor and critic reading the hidden state, the sequence
model reading the latents' probabilities) once per unroll, times them in turn on the same state and batch (so they
share the machine's load), and checks that one update from the same state, batch and key gives bitwise the same
parameters. One JSON line per (T, unroll) with the median CPU time of the process per update, then a summary line
per T with each unroll's time over the first unroll listed's (`over_unroll_1` with the default list):

    python benchmarks/filter_unroll.py [T,T,…] [unroll,unroll,…] [repeats]   # default 2048,4096  1,8  7

Run it with one XLA thread (`XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'`), as the
lanes train, so that CPU time and wall time say the same.
"""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from r2i import scan_grad
from r2i.agent import Agent
from r2i.bench.common import random_batch
from r2i.config import make_config
from r2i.errors import ConfigError
from r2i.runtime import device_description, source_commit
from r2i.spaces import ActionSpace, Space

OVERRIDES = {"model.sequence": "gru", "run.batch_size": 1, "model.policy_inputs": "hidden",
             "model.head_inputs": "full", "model.latent_input": "probs", "behavior.entropy": 1e-2}


def compiled_update(t: int, unroll: int):
    """The update at B 1 × T t, traced with `scan_grad.UNROLL = unroll` (a trace-time constant)."""
    previous, scan_grad.UNROLL = scan_grad.UNROLL, unroll
    try:
        config = make_config("bsuite_cpu", {**OVERRIDES, "run.batch_length": t})
        agent = Agent.from_config(config, {"vector": Space((3,))}, ActionSpace("discrete", nvec=(2,)))
        state = agent.init(jax.random.key(0))
        batch = agent.shard_batch(jax.tree.map(jnp.asarray, random_batch(1, t, 3, 2)))
        return agent, agent.train.lower(state, batch, jax.random.key(1)).compile(), batch
    finally:
        scan_grad.UNROLL = previous


def main(lengths: list[int], unrolls: list[int], repeats: int) -> None:
    commit, device = source_commit(), device_description()
    for t in lengths:
        built = {u: compiled_update(t, u) for u in unrolls}
        # Same state, batch and key through each: the updated parameters must match bitwise (same operations).
        after = {u: jax.device_get(fn(agent.init(jax.random.key(0)), batch, jax.random.key(2))[0].params)
                 for u, (agent, fn, batch) in built.items()}
        first = jax.tree.leaves(after[unrolls[0]])
        identical = {u: all(np.array_equal(a, b) for a, b in zip(first, jax.tree.leaves(p))) for u, p in after.items()}
        states = {u: agent.init(jax.random.key(0)) for u, (agent, _, _) in built.items()}
        times: dict[int, list[float]] = {u: [] for u in unrolls}
        for i in range(repeats + 1):  # the first round is the warm-up
            for u, (_, fn, batch) in built.items():
                start = time.process_time()
                states[u], metrics = fn(states[u], batch, jax.random.key(i))  # the state is donated: keep the new one
                jax.block_until_ready(metrics)
                times[u].append(time.process_time() - start)
        medians = {u: float(np.median(times[u][1:])) for u in unrolls}
        for u in unrolls:
            print(json.dumps(dict(bench="filter_unroll", model="gru", B=1, T=t, unroll=u,
                                  median_cpu_ms=round(1e3 * medians[u], 1), repeats=repeats,
                                  params_identical_to_first=identical[u], device=device, commit=commit)))
        print(json.dumps(dict(bench="filter_unroll", summary=f"over_unroll_{unrolls[0]}", T=t, device=device, commit=commit,
                              ratios={str(u): round(medians[u] / medians[unrolls[0]], 3) for u in unrolls})))


if __name__ == "__main__":
    args = sys.argv[1:]
    try:
        lengths = [int(x) for x in (args[0] if args else "2048,4096").split(",")]
        unrolls = [int(x) for x in (args[1] if len(args) > 1 else "1,8").split(",")]
        repeats = int(args[2]) if len(args) > 2 else 7
    except ValueError:
        raise SystemExit("usage: python benchmarks/filter_unroll.py [T,T,…] [unroll,unroll,…] [repeats] "
                         "(whole numbers, e.g. 2048,4096 1,8 7)") from None
    try:
        main(lengths, unrolls, repeats)
    except ConfigError as error:  # e.g. a T below the preset's 256 imagination starts
        raise SystemExit(f"filter_unroll: {error}") from None
