"""Errors a user can cause. The CLI prints their message without a traceback and exits non-zero."""


class CafaError(Exception):
    """Base class: the message names the file, line or id, and what to do."""


class InputError(CafaError):
    """A bad input file (format, content, unknown ids)."""


class MissingWeightsError(CafaError):
    """Model weights are not on disk and cannot be downloaded."""


class MissingToolError(CafaError):
    """An external program (e.g. DIAMOND) is not installed."""


class ConfigError(CafaError):
    """A bad parameter value or parameter file."""
