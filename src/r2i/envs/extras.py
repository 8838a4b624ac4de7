"""Import optional packages with an error that says which `pip install 'r2i[extra]'` fixes it."""

from __future__ import annotations

import importlib
from types import ModuleType

from r2i.errors import EnvError, MissingExtraError


def require(module: str, what: str, extra: str, package: str | None = None) -> ModuleType:
    """Import `module` or raise MissingExtraError naming the extra; a package that is installed but fails to import
    (a broken dependency) gives an EnvError with the original message instead of a misleading 'not installed'."""
    package = package or module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing = getattr(error, "name", None)
        if missing is None or missing == module or module.startswith(missing + ".") or missing == package:
            raise MissingExtraError(what, extra, package) from None
        raise EnvError(
            f"{what}: '{package}' is installed but importing it failed ({error}); "
            f"reinstall it with pip install --force-reinstall 'r2i[{extra}]'"
        ) from error
