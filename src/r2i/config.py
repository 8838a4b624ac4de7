"""Typed configuration: dataclasses with a one-line doc per field, YAML presets, dotted overrides, validation.

Where the official R2I code differs from a default (SSM discretisation, initial state and C̃ init, imagined
continuation, SSM gradient clip), the default is what the CPU presets were measured with and each field's doc names the
official value; the paper presets set the official values (see the README's "Paper presets").

A configuration is built as: dataclass defaults (DreamerV3 / R2I algorithm settings at small sizes) ← preset YAML (`src/r2i/presets/NAME.yaml`)
← command-line overrides (`--model.ssm.layers 5` or `model.ssm.layers=5`). Unknown keys are rejected with the nearest
valid name; every value is converted to the field's type.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from r2i.errors import ConfigError


def opt(default: Any, doc: str):
    """A dataclass field with a default and a one-line description (shown by `r2i train --help-config`)."""
    if isinstance(default, (dict, list)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: _copy(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


def _copy(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(value)
    return type(value)(value)


# ----------------------------------------------------------------------------------------------------------------------
# The configuration tree
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class MLPConfig:
    layers: int = opt(1, "hidden layers (Linear → LayerNorm → SiLU)")
    units: int = opt(128, "units per hidden layer")


@dataclass
class SSMConfig:
    units: int = opt(128, "H: channels of every S5 layer (width of the sequence model)")
    state: int = opt(64, "P: complex states per layer")
    layers: int = opt(2, "number of stacked S5 blocks")
    blocks: int = opt(4, "HiPPO-N blocks the P states are split into (P must be divisible by it)")
    discretization: str = opt("zoh", "'zoh' or 'bilinear' (official R2I: bilinear, except bsuite: zoh)")
    learned_init: bool = opt(False, "learn the episode-start state x_init instead of zeros (official R2I: learned, except "
                             "bsuite: zeros)")
    c_init: str = opt("fan_in_p", "C̃ = C·V with C drawn as: 'fan_in_p' normal, std 1/√P (S5 paper; the CPU presets) or "
                      "'fan_in_ph' truncated LeCun normal over the whole (H, P, 2) array, std 1/√(P·H) (official R2I)")
    dt_min: float = opt(1e-3, "lower bound of the initial step sizes Δ")
    dt_max: float = opt(1e-1, "upper bound of the initial step sizes Δ")
    method: str = opt("auto", "scan over time: 'auto' (per backend), 'sequential' or 'associative'")


@dataclass
class ModelConfig:
    sequence: str = opt("s3m", "sequence model: 's3m' (S5 stack, R2I) or 'gru' (DreamerV3 RSSM)")
    deter: int = opt(128, "size of h_t (S3M: projection of the stack output; GRU: recurrent state)")
    hidden: int = opt(128, "units of the posterior and prior layers (and of the GRU's input layer)")
    stoch: int = opt(16, "number of categorical latent variables")
    classes: int = opt(16, "classes per categorical latent variable")
    unimix: float = opt(0.01, "uniform mixture of the latent categoricals")
    ssm: SSMConfig = opt(SSMConfig(), "S5 stack (used when sequence='s3m')")
    learned_initial_gru: bool = opt(True, "GRU: learn the episode-start state (DreamerV3)")
    encoder: MLPConfig = opt(MLPConfig(), "MLP over the symlog'd vector observations")
    decoder: MLPConfig = opt(MLPConfig(), "MLP of the vector-observation decoder")
    cnn_depth: int = opt(16, "channels of the first conv layer of the image encoder/decoder (d, 2d, 4d, 8d)")
    reward_head: MLPConfig = opt(MLPConfig(), "reward predictor")
    cont_head: MLPConfig = opt(MLPConfig(), "continue predictor")
    reward_bins: int = opt(255, "bins of the symlog two-hot reward and value distributions")
    kl_free: float = opt(1.0, "free nats of both KL terms")
    kl_dyn: float = opt(0.5, "β_dyn: weight of KL[sg(q) ‖ p]")
    kl_rep: float = opt(0.1, "β_rep: weight of KL[q ‖ sg(p)]")
    loss_scales: dict = opt({}, "weights of the prediction losses, e.g. {reward: 2.0}: keys vector, image (decoders), "
                            "reward, cont; unset = 1.0 (the KL terms: kl_dyn, kl_rep)")
    policy_inputs: str = opt("hidden", "actor/critic inputs: 'output' (z,h), 'hidden' (z,x) or 'full' (z,h,x)")
    dtype: str = opt("auto", "compute dtype: 'auto' (float32 on CPU, bfloat16 on GPU/TPU), 'float32', 'bfloat16'")


@dataclass
class BehaviorConfig:
    horizon: int = opt(15, "imagination horizon H")
    discount: float = opt(1 - 1 / 333, "γ")
    lam: float = opt(0.95, "λ of the λ-returns")
    actor: MLPConfig = opt(MLPConfig(), "actor network")
    critic: MLPConfig = opt(MLPConfig(), "critic network")
    entropy: float = opt(3e-4, "actor entropy bonus η")
    actor_unimix: float = opt(0.01, "uniform mixture of discrete actor distributions")
    min_std: float = opt(0.1, "continuous actor: minimum standard deviation")
    max_std: float = opt(1.0, "continuous actor: maximum standard deviation")
    slow_critic_fraction: float = opt(0.02, "EMA rate of the slow critic")
    slow_reg: float = opt(1.0, "weight of the critic's regulariser towards the slow critic")
    retnorm_decay: float = opt(0.99, "EMA decay of the return percentiles")
    retnorm_low: float = opt(0.05, "lower return percentile")
    retnorm_high: float = opt(0.95, "upper return percentile")
    imag_starts: int = opt(0, "imagination starts per update: 0 = every posterior state of the batch (B·L)")
    imag_chunk: int = opt(0, "roll out the starts in chunks of this many (same maths, smaller working sets); 0 = all at once")
    imag_cont: str = opt("prob", "imagined continuation ĉ: 'prob' the continue head's Bernoulli probability (the CPU "
                         "presets) or 'mode' its mode, 0 or 1 (official R2I / DreamerV3 2023)")


@dataclass
class OptimConfig:
    model_lr: float = opt(1e-4, "world-model learning rate")
    model_eps: float = opt(1e-8, "world-model Adam epsilon")
    model_clip: float = opt(1000.0, "world-model global-norm gradient clip")
    ssm_lr: float = opt(0.0, "learning rate of the SSM parameters (Λ, B̃, C̃, D, log Δ); 0 = model_lr")
    actor_lr: float = opt(3e-5, "actor learning rate")
    critic_lr: float = opt(3e-5, "critic learning rate")
    ssm_clip: str = opt("model", "SSM gradient clip: 'model' inside the world model's global norm (the CPU presets) or "
                        "'per_kind' each kind (Λ_re, Λ_im, B̃, C̃, D, log Δ; all layers) by its own global norm at "
                        "model_clip (official R2I)")
    ac_eps: float = opt(1e-5, "actor and critic Adam epsilon")
    actor_clip: float = opt(100.0, "actor global-norm gradient clip")
    critic_clip: float = opt(100.0, "critic global-norm gradient clip")
    weight_decay: float = opt(0.0, "decoupled weight decay on kernels (never on SSM parameters or norms)")


@dataclass
class EnvConfig:
    id: str = opt("r2i:memory_length/10", "environment id: r2i:…, gym:…, popgym:…, bsuite:…, atari:…, dmc:…, memorymaze:…")
    num_envs: int = opt(4, "environments stepped in parallel for training")
    parallel: bool = opt(False, "step the environments in worker processes (worth it for slow envs)")
    options: dict = opt({}, "keyword options passed to the environment constructor")
    eval_envs: int = opt(4, "environments used for evaluation episodes")


@dataclass
class ReplayConfig:
    capacity: int = opt(1_000_000, "replay capacity in steps, over all env streams (FIFO)")
    backend: str = opt("memory", "'memory' (NumPy arrays in RAM) or 'disk' (memory-mapped chunk files, RAM bounded)")
    directory: str = opt("", "disk backend: where the chunk files live ('' = <logdir>/replay; relative to logdir)")
    chunk: int = opt(1024, "disk backend: ring slots per chunk file and env (a crash loses at most one chunk)")


@dataclass
class RunConfig:
    steps: int = opt(12_000, "env steps to train for (summed over envs)")
    train_ratio: float = opt(512.0, "replayed steps per env step (one update replays batch_size·batch_length)")
    batch_size: int = opt(16, "B: sequences per update")
    batch_length: int = opt(64, "L: steps per sequence")
    prefill: int = opt(2_000, "env steps of uniformly random actions before training starts")
    log_every: int = opt(2_000, "env steps between metric writes")
    eval_every: int = opt(10_000, "env steps between evaluation rounds (0 = never)")
    eval_episodes: int = opt(32, "episodes per evaluation round")
    checkpoint_every: float = opt(600.0, "seconds between checkpoints (also written at the end and on SIGINT/SIGTERM)")
    success_window: int = opt(100, "training episodes averaged into episode/success_recent")
    stop_at_success: float = opt(0.0, "finish once an evaluation round reaches this eval/success (0 = never)")
    eval_sampled: bool = opt(False, "each evaluation round also runs the sampled policy, logged as eval/<key>_sampled "
                             "(the official R2I agent samples when evaluating; the greedy eval/<key> stays)")
    eval_video: bool = opt(True, "image envs: log each evaluation round's episodes and the world model's open-loop "
                           "prediction to TensorBoard (GIFs)")


@dataclass
class Config:
    seed: int = opt(0, "seed of parameters, environments, replay sampling and actions")
    logdir: str = opt("", "run directory (default: runs/<preset>-<env>-<time>)")
    env: EnvConfig = opt(EnvConfig(), "environment")
    replay: ReplayConfig = opt(ReplayConfig(), "replay buffer")
    run: RunConfig = opt(RunConfig(), "training schedule")
    model: ModelConfig = opt(ModelConfig(), "world model")
    behavior: BehaviorConfig = opt(BehaviorConfig(), "actor-critic")
    optim: OptimConfig = opt(OptimConfig(), "optimisers")


# The world model's prediction-loss terms that `model.loss_scales` may weight (r2i.worldmodel declares every term's
# scale from it, and checks that its loss terms and scales match).
LOSS_SCALE_TERMS = ("vector", "image", "reward", "cont")

# ----------------------------------------------------------------------------------------------------------------------
# Conversion between dataclasses, nested dicts and dotted keys
# ----------------------------------------------------------------------------------------------------------------------

CHOICES = {
    "model.sequence": ("s3m", "gru"),
    "model.ssm.discretization": ("zoh", "bilinear"),
    "model.ssm.method": ("auto", "sequential", "associative"),
    "model.policy_inputs": ("output", "hidden", "full"),
    "model.dtype": ("auto", "float32", "bfloat16"),
    "model.ssm.c_init": ("fan_in_p", "fan_in_ph"),
    "behavior.imag_cont": ("prob", "mode"),
    "optim.ssm_clip": ("model", "per_kind"),
    "replay.backend": ("memory", "disk"),
}


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def to_dict(config) -> dict[str, Any]:
    """Nested plain dict (YAML/JSON-safe) of a config dataclass."""
    return dataclasses.asdict(config)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} → {'a.b': 1}. Dict-typed fields (env.options) stay whole."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in _DICT_FIELDS:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def valid_keys(cls=Config, prefix: str = "") -> dict[str, Any]:
    """Every settable dotted key of `cls` with its type."""
    keys = {}
    for f in dataclasses.fields(cls):
        tp = _field_types(cls)[f.name]
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            keys.update(valid_keys(tp, name + "."))
        else:
            keys[name] = tp
    return keys


_DICT_FIELDS = {k for k, t in valid_keys().items() if t is dict or typing.get_origin(t) is dict}


def _unknown_key(key: str, known) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    if not close:  # try matching the last component only, e.g. 'layers' → 'model.ssm.layers'
        tail = [k for k in known if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]]
        close = tail[:1]
    hint = f"; did you mean '{close[0]}'?" if close else "; see `r2i train --help-config` for all keys"
    return ConfigError(f"unknown config key '{key}'{hint}")


def convert(key: str, value: Any, tp) -> Any:
    """Convert a YAML value or command-line string to the field type `tp`, with an error that names the key."""
    if isinstance(value, str) and tp is not str:
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"config key '{key}': cannot parse {value!r}") from None
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            raise TypeError
        if tp in (int, float) and isinstance(value, str):
            value = float(value)  # YAML 1.1 reads '1e5' as a string
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if tp is str:
            return str(value)
        if tp is dict or typing.get_origin(tp) is dict:
            if value is None:
                return {}
            if not isinstance(value, dict):
                raise TypeError
            return dict(value)
    except (TypeError, ValueError):
        name = getattr(tp, "__name__", str(tp))
        raise ConfigError(f"config key '{key}' expects {name}, got {value!r}") from None
    if isinstance(tp, types.UnionType):
        return value
    raise ConfigError(f"config key '{key}' has an unsupported type {tp}")


def apply_overrides(config: Config, flat: dict[str, Any]) -> Config:
    """A new config with dotted keys set; unknown keys and wrong types raise ConfigError."""
    known = valid_keys()
    tree = to_dict(config)
    for key, value in flat.items():
        if key not in known:
            raise _unknown_key(key, known)
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = convert(key, value, known[key])
    return from_dict(tree)


def from_dict(tree: dict[str, Any], cls=Config, prefix: str = ""):
    """Strictly build a dataclass from a nested dict (unknown keys raise ConfigError)."""
    types_ = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if cls is OptimConfig and "ac_clip" in tree:  # a run directory saved before actor_clip / critic_clip existed
        tree = dict(tree)
        clip = tree.pop("ac_clip")
        tree.setdefault("actor_clip", clip)
        tree.setdefault("critic_clip", clip)
    kwargs = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if key not in names:
            raise _unknown_key(name, valid_keys())
        tp = types_[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{name}' is a section; set its fields, e.g. '{name}.…'")
            kwargs[key] = from_dict(value, tp, name + ".")
        else:
            kwargs[key] = convert(name, value, tp)
    return cls(**kwargs)


# ----------------------------------------------------------------------------------------------------------------------
# Presets, command-line overrides, validation, comparison
# ----------------------------------------------------------------------------------------------------------------------


def preset_names() -> list[str]:
    files = importlib.resources.files("r2i.presets").iterdir()
    return sorted(f.name[: -len(".yaml")] for f in files if f.name.endswith(".yaml"))


def load_preset(name: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The flat overrides of a preset; a preset may start from another with a top-level `base: NAME`."""
    names = preset_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown preset '{name}'{hint} (available: {', '.join(names)})")
    if name in _seen:
        raise ConfigError(f"presets {' → '.join(_seen + (name,))} form a cycle of `base:` references")
    text = importlib.resources.files("r2i.presets").joinpath(f"{name}.yaml").read_text()
    tree = yaml.safe_load(text) or {}
    base = tree.pop("base", None)
    flat = load_preset(base, _seen + (name,)) if base else {}
    flat.update(flatten(tree))
    return flat


def parse_overrides(args: list[str]) -> dict[str, str]:
    """['--model.ssm.layers', '5', 'run.steps=100', '--env.parallel=true'] → {'model.ssm.layers': '5', …}."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        body = arg[2:] if arg.startswith("--") else arg
        if "=" in body:
            key, value = body.split("=", 1)
            i += 1
        elif arg.startswith("--"):
            if i + 1 >= len(args) or (args[i + 1].startswith("--") and "=" not in args[i + 1][2:]):
                raise ConfigError(f"config key '{body}' needs a value: --{body} VALUE or {body}=VALUE")
            key, value = body, args[i + 1]
            i += 2
        else:
            raise ConfigError(f"cannot read override {arg!r}: write --key VALUE or key=VALUE, e.g. run.steps=1000")
        out[key.replace("-", "_")] = value
    return out


def make_config(preset: str = "default", overrides: dict[str, Any] | None = None) -> Config:
    """Defaults ← preset ← overrides, validated."""
    config = apply_overrides(Config(), load_preset(preset))
    config = apply_overrides(config, overrides or {})
    validate(config)
    return config


def validate(config: Config) -> None:
    """Field and cross-field checks, with messages that name the field and the fix."""
    flat = flatten(to_dict(config))
    for key, value in flat.items():  # NaN passes every comparison below, and inf is never a usable setting
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key '{key}' must be a finite number, got {value}")
    for key, choices in CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(f"config key '{key}' must be one of {', '.join(map(repr, choices))}; got {flat[key]!r}")
    for key, value in flat.items():
        if key in _POSITIVE or key.endswith(".units"):
            if value <= 0:
                raise ConfigError(f"config key '{key}' must be positive, got {value}")
        elif key in _NON_NEGATIVE or key.endswith(".layers"):
            if value < 0:
                raise ConfigError(f"config key '{key}' must be >= 0, got {value}")
    for key, (low, high, closed_high) in _INTERVALS.items():
        value = flat[key]
        if not (low <= value < high or closed_high and value == high):
            raise ConfigError(f"config key '{key}' must be in [{low}, {high}{']' if closed_high else ')'}, got {value}")
    model, behavior, run = config.model, config.behavior, config.run
    for term, scale in model.loss_scales.items():
        if term not in LOSS_SCALE_TERMS:
            raise ConfigError(f"config key 'model.loss_scales' has no term {term!r}; valid: {', '.join(LOSS_SCALE_TERMS)}"
                              " (the KL terms are weighted by model.kl_dyn and model.kl_rep)")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
            raise ConfigError(f"config key 'model.loss_scales.{term}' must be a finite number >= 0, got {scale!r}")

    def require(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    require(model.ssm.layers >= 1, f"model.ssm.layers must be >= 1, got {model.ssm.layers}")
    require(behavior.discount > 0, f"behavior.discount must be in (0, 1], got {behavior.discount}")
    require(model.ssm.state % model.ssm.blocks == 0,
            f"model.ssm.state={model.ssm.state} must be divisible by model.ssm.blocks={model.ssm.blocks}; change one")
    require(model.ssm.dt_min <= model.ssm.dt_max,
            f"model.ssm.dt_min={model.ssm.dt_min} must not exceed model.ssm.dt_max={model.ssm.dt_max}")
    require(model.reward_bins >= 3 and model.reward_bins % 2 == 1,
            f"model.reward_bins must be an odd number >= 3 (bins symmetric around 0), got {model.reward_bins}")
    require(behavior.min_std <= behavior.max_std,
            f"behavior.min_std={behavior.min_std} must not exceed behavior.max_std={behavior.max_std}")
    require(behavior.retnorm_low < behavior.retnorm_high,
            f"behavior.retnorm_low={behavior.retnorm_low} must be below behavior.retnorm_high={behavior.retnorm_high}")
    require(model.classes >= 2,
            f"model.classes must be >= 2 (a categorical latent with one class carries no information), "
            f"got {model.classes}")
    require(behavior.imag_starts <= run.batch_size * run.batch_length,
            f"behavior.imag_starts={behavior.imag_starts} exceeds the run.batch_size × run.batch_length = "
            f"{run.batch_size * run.batch_length} posterior states of an update; lower it (0 = all of them)")
    starts = behavior.imag_starts if 0 < behavior.imag_starts < run.batch_size * run.batch_length else (
        run.batch_size * run.batch_length)
    require(not behavior.imag_chunk or starts % behavior.imag_chunk == 0,
            f"behavior.imag_chunk={behavior.imag_chunk} must divide the {starts} imagination starts per update "
            "(behavior.imag_starts, or run.batch_size × run.batch_length)")
    require(config.replay.capacity >= config.env.num_envs * run.batch_length,
            f"replay.capacity={config.replay.capacity} must hold at least env.num_envs × run.batch_length = "
            f"{config.env.num_envs * run.batch_length} steps; raise replay.capacity")


_POSITIVE = {
    "model.deter", "model.hidden", "model.stoch", "model.classes", "model.ssm.units", "model.ssm.state",
    "model.ssm.blocks", "model.ssm.dt_min", "model.reward_bins", "model.cnn_depth", "behavior.horizon",
    "env.num_envs", "env.eval_envs", "replay.capacity", "replay.chunk", "run.batch_size", "run.batch_length",
    "run.train_ratio",
    "run.success_window", "run.log_every", "run.checkpoint_every", "optim.model_lr", "optim.actor_lr",
    "optim.critic_lr", "optim.model_eps", "optim.ac_eps", "optim.model_clip", "optim.actor_clip",
    "optim.critic_clip",
    "behavior.min_std",
}  # fmt: skip
_NON_NEGATIVE = {
    "seed", "model.kl_free", "model.kl_dyn", "model.kl_rep", "behavior.entropy", "behavior.slow_reg",
    "behavior.imag_starts", "behavior.imag_chunk", "optim.ssm_lr", "optim.weight_decay", "run.steps", "run.prefill",
    "run.eval_every", "run.eval_episodes",
}  # fmt: skip
# key: (low, high, high included)
_INTERVALS = {
    "model.unimix": (0.0, 1.0, False), "behavior.actor_unimix": (0.0, 1.0, False),
    "behavior.discount": (0.0, 1.0, True), "behavior.lam": (0.0, 1.0, True),
    "behavior.retnorm_decay": (0.0, 1.0, False), "behavior.retnorm_low": (0.0, 1.0, True),
    "behavior.retnorm_high": (0.0, 1.0, True), "behavior.slow_critic_fraction": (0.0, 1.0, True),
    "run.stop_at_success": (0.0, 1.0, True),
}  # fmt: skip


def diff(a: Config, b: Config, ignore: tuple[str, ...] = ("logdir", "run.steps")) -> list[str]:
    """Dotted keys whose values differ (for refusing a resume with a different config)."""
    fa, fb = flatten(to_dict(a)), flatten(to_dict(b))
    return [k for k in fa if k not in ignore and fa[k] != fb.get(k)]


def describe_fields(cls=Config, prefix: str = "") -> list[str]:
    """Lines 'key (type, default): doc' for every field, for --help-config."""
    lines = []
    instance = cls()
    for f in dataclasses.fields(cls):
        tp = _field_types(cls)[f.name]
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            lines.extend(describe_fields(tp, name + "."))
        else:
            default = getattr(instance, f.name)
            lines.append(f"{name} ({getattr(tp, '__name__', tp)}, default {default!r}): {f.metadata.get('doc', '')}")
    return lines


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
