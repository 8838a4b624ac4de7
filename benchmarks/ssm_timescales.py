"""How long can an S3M world model remember? The timescales of its S5 layers, at initialisation and after training.

A mode i of an S5 layer keeps |λ̄_i|^N = exp(Re(Λ_i)·Δ_i·N) of what entered it N steps ago (ZOH), whatever the input
does later. Per layer, this prints the modes' half-lives in steps (ln 2 / (−Re(Λ)·Δ); quantiles and the longest) and,
for each memory length N, the fraction of modes that keep at least half of a cue after N steps — an upper bound on
what the SSM state can carry to a question N steps later (the cue must also enter those modes through B̄ and be read
through C̃ and the heads). `re_at_clip`: the fraction of modes whose Re(Λ) sits at r2i.ssm's clip (−1e-4), i.e. that
training has made into near-integrators. Written for issue 11 (docs/notes.md, "How long the S5 layers remember").

    python benchmarks/ssm_timescales.py RUN_DIR|PRESET [N ...]      # default N: 150 200 512 1024

A preset name (e.g. bsuite_cpu) gives the timescales at initialisation (seed 0) with that preset's SSM settings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np

from r2i import allocator


def ssm_layers(params) -> list[dict[str, np.ndarray]]:
    """Λ_re, Λ_im and log Δ of every S5 layer in a params tree, in the order the tree lists them."""
    found: dict[str, dict[str, np.ndarray]] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        names = [str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))) for p in path]
        if names and names[-1] == "value":  # nnx.Variable leaves end in .value
            names = names[:-1]
        if names and names[-1] in ("lam_re", "lam_im", "log_step"):
            found.setdefault("/".join(names[:-1]), {})[names[-1]] = np.asarray(leaf)
    def layer_order(path: str):  # blocks/2 before blocks/10, as the state's layer axis orders them
        return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.split("/")]

    return [found[k] for k in sorted(found, key=layer_order)]


def decay_rate(layer: dict[str, np.ndarray]) -> np.ndarray:
    """−Re(Λ)·Δ per step of every mode (P,), with Re(Λ) clipped as r2i.ssm clips it."""
    return -np.minimum(layer["lam_re"], -1e-4) * np.exp(layer["log_step"])


def half_lives(params) -> np.ndarray:
    """Every S5 layer's modes' half-lives in steps, (layers, P), in the order of the SSM state's layer axis."""
    return np.stack([np.log(2.0) / decay_rate(layer) for layer in ssm_layers(params)])


def timescales(layer: dict[str, np.ndarray], lengths: list[int]) -> dict:
    rate = decay_rate(layer)
    half_life = np.log(2.0) / rate
    q = np.quantile(half_life, [0.5, 0.9])
    return {"modes": int(rate.size), "half_life_median": round(float(q[0]), 1), "half_life_p90": round(float(q[1]), 1),
            "half_life_max": round(float(half_life.max()), 1),
            "re_at_clip": round(float(np.mean(layer["lam_re"] >= -1e-4)), 3),  # Re(Λ) held at −1e-4: near-integrators
            "keep_half_after": {str(n): round(float(np.mean(np.exp(-rate * n) >= 0.5)), 3) for n in lengths}}


def load_params(source: str):
    if Path(source).is_dir():
        from r2i.api import load

        policy = load(source)
        return policy.params, policy.config
    from r2i import config as cfgmod
    from r2i.agent import Agent
    from r2i.envs import make_env

    config = cfgmod.make_config(source, {})
    env = make_env(config.env.id, config.seed, **config.env.options)
    try:
        agent = Agent.from_config(config, env.obs_space, env.act_space)
    finally:
        env.close()
    return agent.init(jax.random.key(0)).params, config


def main(argv: list[str]) -> None:
    allocator.configure()
    source, lengths = argv[0], [int(n) for n in argv[1:]] or [150, 200, 512, 1024]
    params, config = load_params(source)
    if config.model.sequence != "s3m":
        raise SystemExit(f"{source}: model.sequence is {config.model.sequence}; only S3M has S5 timescales")
    for index, layer in enumerate(ssm_layers(params)):
        print(json.dumps({"source": source, "layer": index, **timescales(layer, lengths)}))


if __name__ == "__main__":
    main(sys.argv[1:])
