"""Errors a user or the environment can cause, and `run_cli`, which turns them into one line and an exit
status: no traceback reaches a user unless the fault is a bug of cafa-mlflow itself."""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Callable

EXIT_BUG = 1  # an internal error: the traceback is printed, with a request to report it
EXIT_USER = 2  # a bad input, parameter or environment (full disk, read-only folder, missing file)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it
EXIT_TERMINATED = 143  # SIGTERM (128 + 15), as shells report it
BUG_NOTE = "this is a bug in cafa-mlflow; please report it with the command you ran"
# OSErrors that come from the machine, not from the code: reported as one line naming the file.
ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.EFBIG,
        errno.EIO,
        errno.EMFILE,
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.EPIPE,
    }
)
MLFLOW_USER_CODES = frozenset(
    {"RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED", "UNAUTHENTICATED", "TEMPORARILY_UNAVAILABLE"}
)


class CafaError(Exception):
    """Base class: the message names the file, line or id, and what to do."""


class InputError(CafaError):
    """A bad input file (format, content, unknown ids)."""


class OutputError(CafaError):
    """An output that cannot be written (full disk, read-only or forbidden location); nothing was changed."""


class MissingWeightsError(CafaError):
    """Model weights are not on disk and cannot be downloaded."""


class NotFittedError(CafaError, RuntimeError):
    """A model used before fit() or load() (scikit-learn's convention: one error type for every unfitted call)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} called before fit() or load(); fit it or load a saved one first.")


class MissingToolError(CafaError):
    """An external program (e.g. DIAMOND) is not installed."""


class ToolError(CafaError):
    """An external program (e.g. DIAMOND) that hung, again after a retry."""


class ConfigError(CafaError):
    """A bad parameter value or parameter file."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (console.run_entry raises it), unwound like Ctrl-C: finally blocks end child processes and remove
    temporary folders; exit status EXIT_TERMINATED."""


def environment_message(err: BaseException) -> str | None:
    """One line for a fault of the machine or its files (OSError with a known errno, MLflow store errors,
    out of memory); None for anything else, which is a bug."""
    if isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS:
        names = [os.fsdecode(n) for n in (err.filename, err.filename2) if n is not None]
        where = f"{' -> '.join(names)}: " if names else ""
        return f"{where}{err.strerror or err} ({errno.errorcode.get(err.errno, err.errno)})"
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
        return f"out of memory ({' '.join(str(err).split()[:12]) or type(err).__name__}); lower the batch size"
    if any(cls.__name__ == "MlflowException" for cls in type(err).__mro__):
        text = " ".join(str(err).split())
        # a missing model/run/alias or an unreachable server; other MLflow errors may be bugs of ours
        if getattr(err, "error_code", "") in MLFLOW_USER_CODES or text.startswith("API request to"):
            return f"MLflow: {text[:300]}"
    return None


def run_cli(body: Callable[[], object]) -> int:
    """Run a command's `body` and return its exit status: the body's int result (0 when it returns
    anything else); 2 with `error: <message>` on stderr for a CafaError or an environment fault; 130 on
    Ctrl-C; 1 with the traceback and a request to report it for any other exception (a bug).
    SystemExit (argparse's --help and usage errors) passes through."""
    try:
        result = body()
    except KeyboardInterrupt as err:
        print("interrupted; finished outputs are kept, unfinished ones were not written", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(err, Terminated) else EXIT_INTERRUPTED
    except CafaError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_USER
    except Exception as err:
        message = environment_message(err)
        if message is not None:
            print(f"error: {message}", file=sys.stderr)
            return EXIT_USER
        traceback.print_exc()
        print(BUG_NOTE, file=sys.stderr)
        return EXIT_BUG
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
