"""The config machinery (r2i.config) over the schema (r2i.schema): keys, conversion, the values each field allows,
presets, overrides, comparison and description. Pure Python: nothing here builds a model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from r2i import config as cfgmod
from r2i import schema
from r2i.config import Config, make_config
from r2i.errors import ConfigError

KEYS = cfgmod.schema_keys()


def _one_line_error(overrides: dict) -> str:
    with pytest.raises(ConfigError) as info:
        make_config("default", overrides)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def test_every_key_has_a_doc_and_an_allowed_default():
    """Each field documents itself, and its default is one of the values it declares allowed."""
    assert len(KEYS) > 80 and set(KEYS) == set(cfgmod.valid_keys())
    for name, key in KEYS.items():
        assert key.doc.strip(), f"{name} has no doc"
        allowed = key.allowed
        if allowed.choices is not None:
            assert key.default in allowed.choices, name
        assert cfgmod._within(key.default, allowed), f"the default of {name} is outside its own bounds"
    cfgmod.validate(Config())  # the dataclass defaults alone make a valid config


def test_choices_come_from_the_fields():
    assert cfgmod.CHOICES["model.sequence"] == ("s3m", "gru")
    assert set(cfgmod.CHOICES) == {name for name, key in KEYS.items() if key.allowed.choices is not None}
    assert len(cfgmod.CHOICES) >= 9


@pytest.mark.parametrize("name", sorted(cfgmod.CHOICES))
def test_a_value_outside_the_choices_is_refused(name):
    choices = cfgmod.CHOICES[name]
    message = _one_line_error({name: "nonsense"})
    assert message == f"{name} must be one of {', '.join(map(repr, choices))}; got 'nonsense'"


def _outside(key: cfgmod.Key) -> list:
    """Values just outside each declared bound of a numeric key."""
    a, step = key.allowed, 1 if key.type is int else 1e-6
    out = []
    if a.gt is not None:
        out.append(a.gt)
    if a.ge is not None:
        out.append(a.ge - step)
    if a.lt is not None:
        out.append(a.lt)
    if a.le is not None:
        out.append(a.le + step)
    return out


BOUNDED = sorted(name for name, key in KEYS.items() if _outside(key))


@pytest.mark.parametrize("name", BOUNDED)
def test_every_declared_bound_is_enforced(name):
    key = KEYS[name]
    for value in _outside(key):
        message = _one_line_error({name: value})
        assert message.startswith(f"{name} must be ") and message.endswith(f", got {key.type(value)}"), message


def test_bounds_in_words():
    words = {name: cfgmod._bounds(KEYS[name].allowed) for name in (
        "model.deter", "model.ssm.layers", "model.classes", "seed", "model.unimix", "behavior.discount", "behavior.lam")}
    assert words == {"model.deter": "positive", "model.ssm.layers": ">= 1", "model.classes": ">= 2", "seed": ">= 0",
                     "model.unimix": "in [0.0, 1.0)", "behavior.discount": "in (0.0, 1.0]",
                     "behavior.lam": "in [0.0, 1.0]"}
    assert _one_line_error({"model.classes": 1}) == (
        "model.classes must be >= 2 (a categorical latent with one class carries no information), got 1")


def test_a_field_declares_one_bound_per_side_and_not_both_kinds():
    with pytest.raises(TypeError):
        schema.opt(1, "doc", gt=0, ge=1)
    with pytest.raises(TypeError):
        schema.opt("a", "doc", choices=("a", "b"), gt=0)


def test_non_finite_numbers_are_refused():
    assert _one_line_error({"optim.model_lr": "nan"}) == "config key 'optim.model_lr' must be a finite number, got nan"
    assert "must be a finite number, got inf" in _one_line_error({"model.ssm.dt_max": "inf"})


@pytest.mark.parametrize("key, value, expected", [
    ("run.steps", "1e5", 100_000),  # YAML 1.1 reads 1e5 as a string
    ("run.steps", "2.0", 2),
    ("run.steps", 3, 3),
    ("run.train_ratio", "64", 64.0),
    ("env.parallel", "true", True),
    ("env.parallel", "yes", True),  # YAML 1.1 booleans
    ("env.options", "{memory_length: 30}", {"memory_length": 30}),
    ("env.options", None, {}),
    ("env.id", "gym:CartPole-v1", "gym:CartPole-v1"),
    ("logdir", "2024", "2024"),  # a str field keeps the text, not YAML's int
])  # fmt: skip
def test_values_are_converted_to_the_field_type(key, value, expected):
    converted = cfgmod.convert(key, value, KEYS[key].type)
    assert converted == expected and type(converted) is type(expected)


@pytest.mark.parametrize("key, value, message", [
    ("run.steps", 1.5, "config key 'run.steps' expects int, got 1.5"),
    ("run.steps", True, "config key 'run.steps' expects int, got True"),
    ("run.steps", "many", "config key 'run.steps' expects int, got 'many'"),
    ("run.train_ratio", True, "config key 'run.train_ratio' expects float, got True"),
    ("env.parallel", "1", "config key 'env.parallel' expects bool, got 1"),
    ("env.options", "[1, 2]", "config key 'env.options' expects dict, got [1, 2]"),
    ("env.options", "{a: 1", "config key 'env.options': cannot parse '{a: 1'"),
])  # fmt: skip
def test_wrong_types_name_the_key(key, value, message):
    with pytest.raises(ConfigError) as info:
        cfgmod.convert(key, value, KEYS[key].type)
    assert str(info.value) == message


def test_unknown_keys_suggest_the_nearest():
    assert _one_line_error({"model.ssm.layer": 3}) == (
        "unknown config key 'model.ssm.layer'; did you mean 'model.ssm.layers'?")
    # No close full name: the key whose last component matches.
    assert _one_line_error({"legacy.settings.gamma.lam": 0.9}).endswith("did you mean 'behavior.lam'?")
    assert _one_line_error({"zzzzqqq": 1}) == (
        "unknown config key 'zzzzqqq'; see `r2i train --help-config` for all keys")
    with pytest.raises(ConfigError, match=r"config key 'model.ssm' is a section; set its fields, e\.g\. 'model.ssm.…'"):
        cfgmod.from_dict({"model": {"ssm": 4}})
    with pytest.raises(ConfigError, match="unknown config key 'model.ssm.layerz'; did you mean 'model.ssm.layers'"):
        cfgmod.from_dict({"model": {"ssm": {"layerz": 1}}})


def test_parse_overrides_forms():
    assert cfgmod.parse_overrides(["--model.ssm.layers", "5", "run.steps=100", "--env.parallel=true",
                                   "--run.batch-size", "4"]) == {
        "model.ssm.layers": "5", "run.steps": "100", "env.parallel": "true", "run.batch_size": "4"}
    with pytest.raises(ConfigError, match="config key 'run.steps' needs a value: --run.steps VALUE or run.steps=VALUE"):
        cfgmod.parse_overrides(["--run.steps", "--seed", "1"])
    with pytest.raises(ConfigError, match="cannot read override 'steps'"):
        cfgmod.parse_overrides(["steps"])


@pytest.mark.parametrize("preset", cfgmod.preset_names())
def test_every_preset_round_trips(preset):
    """A resolved preset survives YAML (a run's config.yaml) and dotted keys (overrides) unchanged."""
    config = make_config(preset)
    assert cfgmod.from_dict(yaml.safe_load(cfgmod.dump_yaml(config))) == config
    assert cfgmod.apply_overrides(Config(), cfgmod.flatten(cfgmod.to_dict(config))) == config
    assert cfgmod.diff(config, config) == []


def test_presets_stack_and_unknown_ones_are_named(monkeypatch):
    assert cfgmod.load_preset("bsuite_cpu")["optim.model_lr"] == cfgmod.load_preset("default")["optim.model_lr"]
    with pytest.raises(ConfigError, match=r"unknown preset 'defualt'; did you mean 'default'\? \(available: "):
        make_config("defualt")
    texts = {"a.yaml": "base: b\n", "b.yaml": "base: a\n"}  # two presets that start from each other
    monkeypatch.setattr(cfgmod, "preset_names", lambda: ["a", "b"])
    monkeypatch.setattr(cfgmod.importlib.resources, "files",
                        lambda _: SimpleNamespace(joinpath=lambda name: SimpleNamespace(read_text=lambda: texts[name])))
    with pytest.raises(ConfigError, match="presets a → b → a form a cycle"):
        cfgmod.load_preset("a")


def test_diff_names_the_changed_keys():
    a = make_config("default")
    b = cfgmod.apply_overrides(a, {"model.ssm.layers": 3, "run.steps": 5, "logdir": "x", "env.options": "{k: 1}",
                                   "env.eval_envs": 50})
    # logdir, run.steps and env.eval_envs may change on resume
    assert cfgmod.diff(a, b) == ["env.options", "model.ssm.layers"]


def test_descriptions_list_every_key_once():
    config = make_config("default", {"model.ssm.layers": 3})
    lines = cfgmod.describe_config(config)
    assert [line.split(" ", 1)[0] for line in lines] == list(KEYS)
    assert "model.ssm.layers (int) = 3 (default 2): number of stacked S5 blocks" in lines
    assert "seed (int) = 0: seed of parameters, environments, replay sampling and actions" in lines
    fields = cfgmod.describe_fields()
    assert len(fields) == len(KEYS) and "model.ssm.layers (int, default 2): number of stacked S5 blocks" in fields


def test_old_ac_clip_key_still_loads():
    """Run directories saved with optim.ac_clip resume with the same clips (actor_clip = critic_clip = ac_clip)."""
    config = cfgmod.from_dict({"optim": {"ac_clip": 50.0}})
    assert (config.optim.actor_clip, config.optim.critic_clip) == (50.0, 50.0)
    with pytest.raises(ConfigError, match="optim.ssm_clip"):
        make_config("default", {"optim.ssm_clip": "layer"})


def test_cross_field_rules():
    assert _one_line_error({"model.ssm.state": 6}) == (
        "model.ssm.state=6 must be divisible by model.ssm.blocks=4; change one")
    assert _one_line_error({"model.reward_bins": 4}).startswith("model.reward_bins must be an odd number")
    assert _one_line_error({"behavior.min_std": 2}) == "behavior.min_std=2.0 must not exceed behavior.max_std=1.0"
    assert _one_line_error({"behavior.imag_chunk": 7}).startswith("behavior.imag_chunk=7 must divide the 256")
    assert _one_line_error({"replay.capacity": 10}).startswith("replay.capacity=10 must hold at least")
