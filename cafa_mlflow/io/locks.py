"""The one cross-process file lock (filelock): SQLite tracking stores and Optuna studies are guarded by it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from cafa_mlflow.errors import ConfigError


@contextmanager
def file_lock(
    path: str | os.PathLike, timeout_s: float | None = None, holder: str = "another process"
) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (its folder is created); wait at most `timeout_s` seconds
    (None: as long as it takes), then a one-line ConfigError naming the lock file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path), timeout=-1 if timeout_s is None else timeout_s):
            yield
    except Timeout as err:
        raise ConfigError(
            f"{path}: waited {timeout_s} s for {holder}; check for a hung process, or delete the lock file if none "
            "is running."
        ) from err
