"""`r2i bench train`: time the whole update (world model + imagination + actor + critic), S3M and GRU in one run.

Each (model, B, T) runs in its own process so that its peak RSS and compile time are its own (the persistent
compilation cache is off there). One JSON line per (model, B, T), then a summary line with the gru/s3m ratio per T
and the machine's float32 matmul throughput measured in the same run, so each update's fraction of that roofline is
shown (`roofline_fraction` = FLOPs / matmul throughput / median time).

Config overrides (`key=value`) apply to every update timed. `--variant NAME:OVERRIDES` (repeatable) also times the
update with more overrides, e.g. `--variant 'full:model.head_inputs=full'`: each variant runs right after the base
update of the same (model, B, T), so the two share the machine's load, and a summary line gives each variant's time
over the base's (`variant_over_base`).
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import shlex
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from r2i import allocator
from r2i.bench.common import compile_and_time, device_memory, emit, random_batch
from r2i.runtime import device_description, peak_rss_mb

# "popgym_released": the POPGym block of the official R2I configs.yaml as released on its main branch (the regex
# `.*\.units: 512` comes after `rssm.units: 1024` there and wins: SSM width H 512, P 128 (rssm.hidden default), 3
# layers, deter 1024), i.e. what the reference implementation runs out of the box, for a like-for-like speed comparison
# on one machine. It is NOT the `popgym` preset, which follows the fixed sizes of the official `popgym` branch (H 1024,
# P 512, 5 layers, deter 512).
SIZES = {
    "popgym_released": {
        "model.ssm.units": 512, "model.ssm.state": 128, "model.ssm.layers": 3, "model.ssm.blocks": 8,
        "model.deter": 1024, "model.hidden": 512, "model.stoch": 32, "model.classes": 32,
        "model.encoder.layers": 1, "model.encoder.units": 512, "model.decoder.layers": 1, "model.decoder.units": 512,
        "model.reward_head.layers": 2, "model.reward_head.units": 512,
        "model.cont_head.layers": 2, "model.cont_head.units": 512,
        "behavior.actor.layers": 2, "behavior.actor.units": 512,
        "behavior.critic.layers": 2, "behavior.critic.units": 512,
        "model.policy_inputs": "hidden", "behavior.imag_starts": 0, "behavior.horizon": 15,
    },
    "cpu": {},  # the `default` preset
}  # fmt: skip
OBS_SIZE, ACTIONS = 8, 4  # a POPGym-like vector observation and discrete action space


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matmul throughput through XLA on this machine (median of `repeats`)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    _, median_s, _ = compile_and_time(jax.jit(jnp.matmul), (a, b), repeats)
    return 2 * n**3 / median_s / 1e9


def worker(model: str, size: str, b: int, t: int, repeats: int, extra: dict | None = None) -> dict:
    """Build, compile and time one update in this process (`extra`: more config overrides, e.g. model.dtype)."""
    from r2i.agent import Agent
    from r2i.bench.flops import function_flops
    from r2i.config import make_config
    from r2i.spaces import ActionSpace, Space
    from r2i.threads import available_cores, limit_cpu_threads

    overrides = dict(SIZES[size], **(extra or {}), **{"model.sequence": model, "run.batch_size": b,
                                                       "run.batch_length": t})
    config = make_config("default", overrides)
    threads = limit_cpu_threads(config.run.cpu_threads)  # this worker's first use of JAX follows
    agent = Agent.from_config(config, {"vector": Space((OBS_SIZE,))}, ActionSpace("discrete", nvec=(ACTIONS,)))
    state = agent.init(jax.random.key(0))
    batch = agent.shard_batch(jax.tree.map(jnp.asarray, random_batch(b, t, OBS_SIZE, ACTIONS)))
    key = jax.random.key(1)
    flops = function_flops(agent._train, state, batch, key)
    start = time.perf_counter()
    compiled = agent.train.lower(state, batch, key).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    times, faults, system, user = [], [], [], []
    for i in range(repeats + 1):  # the first run is the warm-up
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        state, metrics = compiled(state, batch, jax.random.key(i))
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
        faults.append(after.ru_minflt - before.ru_minflt)
        system.append(after.ru_stime - before.ru_stime)
        user.append(after.ru_utime - before.ru_utime)
    if not bool(metrics["train/finite"]):
        raise RuntimeError(f"non-finite update in the benchmark ({model}, B={b}, T={t})")
    median_s = float(np.median(times[1:]))
    return dict(
        bench="train", model=model, size=size, B=b, T=t, median_s=round(median_s, 4), compile_s=round(compile_s, 2),
        peak_rss_mb=round(peak_rss_mb(), 1), gflop=round(flops["total"] / 1e9, 2),
        gflop_matmul=round(flops["matmul"] / 1e9, 2), xla_gflop_loop_bodies_once=round(cost.get("flops", 0) / 1e9, 2),
        gflops_achieved=round(flops["total"] / 1e9 / median_s, 1), repeats=repeats, device=device_description(),
        page_faults_per_update=int(np.median(faults[1:])), system_ms_per_update=round(1e3 * np.median(system[1:]), 2),
        user_ms_per_update=round(1e3 * np.median(user[1:]), 2),
        system_fraction=round(sum(system[1:]) / max(sum(system[1:]) + sum(user[1:]), 1e-9), 4),
        allocator_configured=allocator.configure(), cpu_threads=threads or available_cores(),
        params=agent.num_params(state), dtype=str(np.dtype(agent.dtype)), **device_memory(compiled),
    )


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """'full:model.head_inputs=full behavior.entropy=1e-2' → ('full', {'model.head_inputs': 'full', …})."""
    from r2i.config import parse_overrides
    from r2i.errors import ConfigError

    name, sep, body = text.partition(":")
    if not sep or not name.strip() or not body.strip():
        raise ConfigError(f"--variant must be NAME:key=value [key=value …], e.g. 'full:model.head_inputs=full', "
                          f"got {text!r}")
    if name.strip() == "base":
        raise ConfigError("--variant name 'base' is taken by the update without the variant's overrides")
    return name.strip(), parse_overrides(shlex.split(body))


# Keys the benchmark sets itself for every update it times, and the flag that sets each.
_LOOP_KEYS = {"model.sequence": "--models", "run.batch_size": "--B", "run.batch_length": "--T"}


def _check_overrides(size: str, models: list[str], batch: list[int], length: list[int], overrides: dict,
                     variants: dict[str, dict]) -> None:
    """Build every variant's config at every timed (model, B, T), here, so that a bad key or value fails before any
    timing starts. The timed B and T go in: a value is valid or not at the sizes it runs at (`behavior.imag_starts`
    may not exceed B·T)."""
    from r2i.config import make_config
    from r2i.errors import ConfigError

    for extra in [overrides, *({**overrides, **v} for v in variants.values())]:
        clashes = sorted(_LOOP_KEYS.keys() & extra.keys())
        if clashes:
            key = clashes[0]
            raise ConfigError(f"bench train sets {key} itself for every update: use {_LOOP_KEYS[key]} instead of "
                              f"{key}={extra[key]}")
        for model, b, t in itertools.product(models, batch, length):
            make_config("default", dict(SIZES[size], **extra, **{"model.sequence": model, "run.batch_size": b,
                                                                  "run.batch_length": t}))


def run(models: list[str], size: str, batch: list[int], length: list[int], repeats: int,
        overrides: dict[str, str] | None = None, variants: dict[str, dict[str, str]] | None = None) -> None:
    """Time every (model, B, T) with `overrides`, and again with each variant's overrides added."""
    from r2i.errors import ConfigError

    if size not in SIZES:
        renamed = " ('popgym' was renamed 'popgym_released': the released config, not the popgym preset)" if (
            size == "popgym") else ""
        raise ConfigError(f"--size must be one of {', '.join(SIZES)}, got {size!r}{renamed}")
    overrides, variants = dict(overrides or {}), dict(variants or {})
    _check_overrides(size, models, batch, length, overrides, variants)
    roofline = matmul_gflops()
    emit(dict(bench="train", roofline="matmul_float32", n=2048, gflops=round(roofline, 1),
              device=device_description()))
    results = []
    for b in batch:
        for t in length:
            for model in models:
                for variant, extra in [("base", overrides), *((n, {**overrides, **v}) for n, v in variants.items())]:
                    env = dict(os.environ, R2I_NO_COMPILE_CACHE="1")
                    cmd = [sys.executable, "-m", "r2i.bench.train", model, size, str(b), str(t), str(repeats),
                           json.dumps(extra)]
                    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                    tags = dict(variant=variant, overrides=extra) if (variants or overrides) else {}
                    if proc.returncode:
                        emit(dict(bench="train", model=model, B=b, T=t, **tags,
                                  error=proc.stderr.strip().splitlines()[-1:]))
                        continue
                    record = dict(json.loads(proc.stdout.strip().splitlines()[-1]), **tags)
                    record["roofline_fraction"] = round(record["gflops_achieved"] / roofline, 3)
                    emit(record)
                    results.append(record)
    if variants:
        times = {(r.get("variant", "base"), r["model"], r["B"], r["T"]): r["median_s"] for r in results}
        emit(dict(bench="train", summary="variant_over_base", size=size, variants=variants, ratios={
            f"{name} {model} B{b}xT{t}": round(times[(name, model, b, t)] / times[("base", model, b, t)], 3)
            for name in variants for model in models for b in batch for t in length
            if (name, model, b, t) in times and ("base", model, b, t) in times
        }, device=device_description()))
    results = [r for r in results if r.get("variant", "base") == "base"]
    by_key = {(r["model"], r["B"], r["T"]): r for r in results}
    ratios = {
        f"B{b}xT{t}": round(by_key[("gru", b, t)]["median_s"] / by_key[("s3m", b, t)]["median_s"], 3)
        for b in batch
        for t in length
        if ("gru", b, t) in by_key and ("s3m", b, t) in by_key
    }
    if ratios:  # both models timed
        emit(dict(bench="train", summary="gru_over_s3m", size=size, ratios=ratios, matmul_gflops=round(roofline, 1),
                  device=device_description()))


if __name__ == "__main__":  # worker process: python -m r2i.bench.train MODEL SIZE B T REPEATS [OVERRIDES_JSON]
    if not os.environ.get("R2I_SYSTEM_MALLOC"):  # as `r2i train` runs it (set R2I_SYSTEM_MALLOC=1 to compare)
        allocator.configure()
    _model, _size, _b, _t, _repeats = sys.argv[1:6]
    _extra = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    print(json.dumps(worker(_model, _size, int(_b), int(_t), int(_repeats), _extra)), flush=True)
