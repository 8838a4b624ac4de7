"""`r2i bench train`'s overrides and variants: parsed, and checked before any timing starts (the timing itself is a
benchmark, not a test)."""

import pytest

from r2i.bench import train
from r2i.cli import main
from r2i.errors import ConfigError


def test_variant_parses_name_and_overrides():
    assert train.parse_variant("full:model.head_inputs=full behavior.entropy=1e-2") == (
        "full", {"model.head_inputs": "full", "behavior.entropy": "1e-2"})


@pytest.mark.parametrize("text, match", [
    ("model.head_inputs=full", "NAME:key=value"),
    ("full:", "NAME:key=value"),
    ("base:model.head_inputs=full", "'base' is taken"),
])
def test_malformed_variant_is_refused(text, match):
    with pytest.raises(ConfigError, match=match):
        train.parse_variant(text)


def test_bad_override_fails_before_timing(monkeypatch):
    def no_timing(*args, **kwargs):
        raise AssertionError("timing started before the overrides were checked")

    monkeypatch.setattr(train, "matmul_gflops", no_timing)
    with pytest.raises(ConfigError, match="head_input"):
        train.run(["s3m"], "cpu", [4], [64], 1, variants={"typo": {"model.head_input": "full"}})
    with pytest.raises(ConfigError, match="head_inputs"):
        train.run(["s3m"], "cpu", [4], [64], 1, overrides={"model.head_inputs": "everything"})
    with pytest.raises(ConfigError, match="use --B instead of run.batch_size=8"):
        train.run(["s3m"], "cpu", [4], [64], 1, variants={"big": {"run.batch_size": "8"}})
    # A value is checked at the sizes that are timed: 512 starts fit B 1 × T 1,024, not B 4 × T 64.
    with pytest.raises(ConfigError, match="imag_starts=512 exceeds"):
        train.run(["s3m"], "cpu", [4], [64], 1, variants={"starts": {"behavior.imag_starts": "512"}})
    train._check_overrides("cpu", ["s3m"], [1], [1024], {}, {"starts": {"behavior.imag_starts": "512"}})


def test_cli_refuses_duplicate_variant_names(capsys):
    code = main(["bench", "train", "--variant", "a:model.head_inputs=full", "--variant", "a:behavior.entropy=1e-2"])
    assert code != 0
    assert "must differ" in capsys.readouterr().err
