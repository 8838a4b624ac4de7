"""Configuration machinery over the schema in `r2i.schema`: YAML presets, dotted overrides, type conversion,
validation, comparison and description. The schema's classes are re-exported here (`from r2i.config import Config`).

A configuration is built as: dataclass defaults (DreamerV3 / R2I algorithm settings at small sizes) ← preset YAML
(`src/r2i/presets/NAME.yaml`) ← command-line overrides (`--model.ssm.layers 5` or `model.ssm.layers=5`). Unknown keys
are rejected with the nearest valid name; every value is converted to its field's type and checked against the values
its field allows; then the rules that tie several fields together are checked.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

import yaml

from r2i.errors import ConfigError, did_you_mean
from r2i.schema import (
    LOSS_SCALE_TERMS,
    Allowed,
    BehaviorConfig,
    Config,
    EnvConfig,
    MLPConfig,
    ModelConfig,
    OptimConfig,
    ReplayConfig,
    RunConfig,
    SSMConfig,
)

__all__ = [
    "CHOICES", "LOSS_SCALE_TERMS", "BehaviorConfig", "Config", "ConfigError", "EnvConfig", "Key", "MLPConfig", "ModelConfig", "OptimConfig",
    "ReplayConfig", "RunConfig", "SSMConfig", "apply_overrides", "convert", "describe_config", "describe_fields", "diff",
    "dump_yaml", "flatten", "from_dict", "load_preset", "make_config", "parse_overrides", "preset_names", "schema_keys",
    "to_dict", "valid_keys", "validate",
]  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------------
# The schema as dotted keys
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One settable dotted key of the schema, e.g. 'model.ssm.layers' (int, default 2)."""

    name: str
    type: Any
    default: Any
    doc: str
    allowed: Allowed


def schema_keys(cls=Config, prefix: str = "") -> dict[str, Key]:
    """Every settable dotted key of `cls`, in declaration order: sections are flattened, dict fields stay whole."""
    keys = {}
    hints, defaults = typing.get_type_hints(cls), cls()
    for f in dataclasses.fields(cls):
        name, tp = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys.update(schema_keys(tp, name + "."))
        else:
            keys[name] = Key(name, tp, getattr(defaults, f.name), f.metadata["doc"], f.metadata["allowed"])
    return keys


_KEYS = schema_keys()
_DICT_FIELDS = {name for name, key in _KEYS.items() if key.type is dict or typing.get_origin(key.type) is dict}
# The keys with a fixed set of values: {'model.sequence': ('s3m', 'gru'), …}.
CHOICES = {name: key.allowed.choices for name, key in _KEYS.items() if key.allowed.choices is not None}


def valid_keys(cls=Config, prefix: str = "") -> dict[str, Any]:
    """Every settable dotted key of `cls` with its type."""
    return {name: key.type for name, key in schema_keys(cls, prefix).items()}


# ----------------------------------------------------------------------------------------------------------------------
# Conversion between dataclasses, nested dicts and dotted keys
# ----------------------------------------------------------------------------------------------------------------------


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


def _unknown_key(key: str, known) -> ConfigError:
    quote = "'{}'".format
    hint = did_you_mean(key, known, cutoff=0.5, show=quote, lead="; ")
    if not hint:  # try matching the last component only, e.g. 'x.layers' → 'model.ssm.layers'
        tail = [k for k in known if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]]
        hint = did_you_mean(key, tail[:1], cutoff=0.0, show=quote, lead="; ")
    return ConfigError(f"unknown config key '{key}'{hint or '; see `r2i train --help-config` for all keys'}")


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
    tree = to_dict(config)
    for key, value in flat.items():
        if key not in _KEYS:
            raise _unknown_key(key, _KEYS)
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = convert(key, value, _KEYS[key].type)
    return from_dict(tree)


def from_dict(tree: dict[str, Any], cls=Config, prefix: str = ""):
    """Strictly build a dataclass from a nested dict (unknown keys raise ConfigError)."""
    types_ = typing.get_type_hints(cls)
    if cls is OptimConfig and "ac_clip" in tree:  # a run directory saved before actor_clip / critic_clip existed
        tree = dict(tree)
        clip = tree.pop("ac_clip")
        tree.setdefault("actor_clip", clip)
        tree.setdefault("critic_clip", clip)
    kwargs = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if key not in types_:
            raise _unknown_key(name, _KEYS)
        tp = types_[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{name}' is a section; set its fields, e.g. '{name}.…'")
            kwargs[key] = from_dict(value, tp, name + ".")
        else:
            kwargs[key] = convert(name, value, tp)
    return cls(**kwargs)


# ----------------------------------------------------------------------------------------------------------------------
# Presets, command-line overrides, validation, comparison, description
# ----------------------------------------------------------------------------------------------------------------------


def preset_names() -> list[str]:
    files = importlib.resources.files("r2i.presets").iterdir()
    return sorted(f.name[: -len(".yaml")] for f in files if f.name.endswith(".yaml"))


def load_preset(name: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The flat overrides of a preset; a preset may start from another with a top-level `base: NAME`."""
    names = preset_names()
    if name not in names:
        hint = did_you_mean(name, names, show="'{}'".format, lead="; ")
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
        body = arg.removeprefix("--")
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


def _bounds(allowed: Allowed) -> str:
    """A field's bounds in words: 'positive', '>= 1', 'in (0.0, 1.0]'."""
    low = ("(", ">", allowed.gt) if allowed.gt is not None else ("[", ">=", allowed.ge)
    high = (")", "<", allowed.lt) if allowed.lt is not None else ("]", "<=", allowed.le)
    if low[2] is not None and high[2] is not None:
        return f"in {low[0]}{low[2]}, {high[2]}{high[0]}"
    if low[1] == ">" and low[2] == 0:
        return "positive"
    _, op, edge = low if low[2] is not None else high
    return f"{op} {edge}"


def _within(value, allowed: Allowed) -> bool:
    return ((allowed.gt is None or value > allowed.gt) and (allowed.ge is None or value >= allowed.ge)
            and (allowed.lt is None or value < allowed.lt) and (allowed.le is None or value <= allowed.le))


def validate(config: Config) -> None:
    """Every field against the values its schema allows, then the rules between fields; the messages name the field
    and the fix."""
    flat = flatten(to_dict(config))
    for key, value in flat.items():  # NaN passes every comparison below, and inf is never a usable setting
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key '{key}' must be a finite number, got {value}")
    for key, value in flat.items():
        allowed = _KEYS[key].allowed
        if allowed.choices is not None and value not in allowed.choices:
            raise ConfigError(f"{key} must be one of {', '.join(map(repr, allowed.choices))}; got {value!r}")
        if not _within(value, allowed):
            why = f" ({allowed.why})" if allowed.why else ""
            raise ConfigError(f"{key} must be {_bounds(allowed)}{why}, got {value}")
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

    require(model.ssm.state % model.ssm.blocks == 0,
            f"model.ssm.state={model.ssm.state} must be divisible by model.ssm.blocks={model.ssm.blocks}; change one")
    require(model.ssm.dt_min <= model.ssm.dt_max,
            f"model.ssm.dt_min={model.ssm.dt_min} must not exceed model.ssm.dt_max={model.ssm.dt_max}")
    require(model.reward_bins % 2 == 1,
            f"model.reward_bins must be an odd number >= 3 (bins symmetric around 0), got {model.reward_bins}")
    require(behavior.min_std <= behavior.max_std,
            f"behavior.min_std={behavior.min_std} must not exceed behavior.max_std={behavior.max_std}")
    require(behavior.retnorm_low < behavior.retnorm_high,
            f"behavior.retnorm_low={behavior.retnorm_low} must be below behavior.retnorm_high={behavior.retnorm_high}")
    require(behavior.imag_starts <= run.batch_size * run.batch_length,
            f"behavior.imag_starts={behavior.imag_starts} exceeds the run.batch_size × run.batch_length = "
            f"{run.batch_size * run.batch_length} posterior states of an update; lower it (0 = all of them)")
    starts = behavior.imag_starts if 0 < behavior.imag_starts < run.batch_size * run.batch_length else (
        run.batch_size * run.batch_length)
    require(not behavior.imag_chunk or starts % behavior.imag_chunk == 0,
            f"behavior.imag_chunk={behavior.imag_chunk} must divide the {starts} imagination starts per update "
            "(behavior.imag_starts, or run.batch_size × run.batch_length)")
    require(run.stop_metric.startswith("eval/") and len(run.stop_metric) > len("eval/"),
            f"run.stop_metric must name an evaluation metric, eval/<key> (eval/success, eval/return, eval/length or "
            f"an env's eval/<log key>), got {run.stop_metric!r}")
    require(config.replay.capacity >= config.env.num_envs * run.batch_length,
            f"replay.capacity={config.replay.capacity} must hold at least env.num_envs × run.batch_length = "
            f"{config.env.num_envs * run.batch_length} steps; raise replay.capacity")


# Keys a run may change when it resumes: where it lives, its budget, the threads it computes on, how many envs an
# evaluation round runs side by side (how fast a round runs, not what is trained: a round takes one key from the
# training stream whatever its envs, and its episodes are drawn from the same evaluation seeds' distribution), and
# how often it keeps a snapshot (a copy of what it trains, read by nothing it trains).
RESUMABLE_KEYS = ("logdir", "run.steps", "run.cpu_threads", "env.eval_envs", "run.snapshot_every")


def diff(a: Config, b: Config, ignore: tuple[str, ...] = RESUMABLE_KEYS) -> list[str]:
    """Dotted keys whose values differ (for refusing a resume with a different config), except `ignore`'s."""
    fa, fb = flatten(to_dict(a)), flatten(to_dict(b))
    return [k for k in fa if k not in ignore and fa[k] != fb.get(k)]


def _type_name(tp) -> str:
    return str(getattr(tp, "__name__", tp))


def describe_fields(cls=Config, prefix: str = "") -> list[str]:
    """Lines 'key (type, default): doc' for every field of the schema."""
    return [f"{k.name} ({_type_name(k.type)}, default {k.default!r}): {k.doc}" for k in schema_keys(cls, prefix).values()]


def describe_config(config: Config) -> list[str]:
    """Lines 'key (type) = value: doc' for every key of a resolved config, with the default where the value differs
    (`r2i train --help-config`)."""
    flat = flatten(to_dict(config))
    lines = []
    for key in _KEYS.values():
        value = flat[key.name]
        note = "" if value == key.default else f" (default {key.default!r})"
        lines.append(f"{key.name} ({_type_name(key.type)}) = {value!r}{note}: {key.doc}")
    return lines


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
