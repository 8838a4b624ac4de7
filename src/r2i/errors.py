"""Errors for bad input. The CLI prints these as one line that names the field and the fix, without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable


class R2IError(Exception):
    """Base class of the errors a user can fix (configuration, environment, installation)."""


class ConfigError(R2IError, ValueError):
    """An unknown, missing or invalid configuration value."""


class EnvError(R2IError, ValueError):
    """An environment with unsupported spaces or invalid observations (shape, dtype, NaN)."""


class TrainingDivergedError(R2IError, FloatingPointError):
    """An update produced non-finite losses or gradients."""


class MissingExtraError(R2IError, ImportError):
    """An optional dependency is not installed; the message names the `pip install 'r2i[extra]'` to run."""

    def __init__(self, what: str, extra: str, package: str):
        super().__init__(f"{what} needs the optional package '{package}': pip install 'r2i[{extra}]'")
        self.extra = extra
        self.package = package


def did_you_mean(word: str, candidates: Iterable[str], *, n: int = 1, cutoff: float = 0.6,
                 show: Callable[[str], str] = str, lead: str = " ") -> str:
    """The hint for a misspelt `word`: `lead` + 'Did you mean X?' with the candidate closest to it (n = 1), or
    'Did you mean: X, Y?' with up to n of them, each written by `show`; '' when none is close enough.

    Closeness is difflib's similarity ratio (0…1, at least `cutoff`). The hint starts a sentence ('Did') after a
    blank lead or one ending in '.', and continues one ('did') after any other, e.g. lead='; '.
    """
    close = difflib.get_close_matches(word, list(candidates), n=n, cutoff=cutoff)
    if not close:
        return ""
    verb = "Did" if lead.rstrip().endswith(".") or not lead.strip() else "did"
    shown = f" {show(close[0])}" if n == 1 else f": {', '.join(map(show, close))}"
    return f"{lead}{verb} you mean{shown}?"
