"""r2i.errors: the shared 'did you mean' hint (used for config keys, presets and every env id family)."""

from r2i.errors import did_you_mean

SIZES = ["9x9", "11x11", "13x13", "15x15"]


def test_one_suggestion_or_a_list():
    assert did_you_mean("9x8", SIZES) == " Did you mean 9x9?"
    assert did_you_mean("1x11", SIZES, n=3, show=lambda s: f"memorymaze:{s}") == (
        " Did you mean: memorymaze:11x11, memorymaze:15x15, memorymaze:13x13?")
    assert did_you_mean("9x8", SIZES, n=3) == " Did you mean: 9x9?"  # a list form even with one match


def test_nothing_close_gives_no_hint():
    assert did_you_mean("pong", SIZES) == ""
    assert did_you_mean("9x9x9", SIZES, cutoff=1.0) == ""  # cutoff 1 takes exact matches only
    assert did_you_mean("9x9", SIZES, cutoff=1.0) == " Did you mean 9x9?"


def test_the_lead_decides_the_case():
    assert did_you_mean("popgim", ["popgym"], show="'{}'".format, lead="; ") == "; did you mean 'popgym'?"
    assert did_you_mean("popgim", ["popgym"], lead=". ") == ". Did you mean popgym?"
    assert did_you_mean("popgim", ["popgym"], lead=" (") == " (did you mean popgym?"
