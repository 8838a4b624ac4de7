"""Errors for bad input. The CLI prints these as one line that names the field and the fix, without a traceback."""


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
