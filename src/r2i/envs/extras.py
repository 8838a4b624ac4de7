"""Import optional packages with an error that says which `pip install 'r2i[extra]'` fixes it."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from r2i.errors import EnvError, MissingExtraError


def require(module: str, what: str, extra: str, package: str | None = None) -> ModuleType:
    """Import `module` or raise MissingExtraError naming the extra; a package that is installed but fails to import
    (a broken dependency) gives an EnvError with the original message instead of a misleading 'not installed'."""
    top = module.split(".")[0]
    package = package or top
    try:
        return importlib.import_module(module)
    except ImportError as error:
        try:
            installed = importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            installed = False
        if not installed:
            raise MissingExtraError(what, extra, package) from None
        raise EnvError(
            f"{what}: '{package}' is installed but importing it failed ({error}); "
            f"reinstall it with pip install --force-reinstall 'r2i[{extra}]'"
        ) from error
