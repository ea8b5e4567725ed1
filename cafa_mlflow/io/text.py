"""Open plain, gzip or xz text files by their suffix."""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from cafa_mlflow.errors import InputError


def open_text(path: str | os.PathLike, mode: str = "rt") -> IO:
    """Open `path` as UTF-8 text (bytes with a 'b' mode); `.gz` and `.xz` are (de)compressed transparently."""
    path = Path(path)
    if "r" in mode and not path.is_file():
        raise InputError(f"{path}: file not found; check the path (and params.yaml's data block).")
    encoding = None if "b" in mode else "utf-8"
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, mode, encoding=encoding)
    if suffix == ".xz":
        return lzma.open(path, mode, encoding=encoding)
    return open(path, mode, encoding=encoding)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_temp_dir(final: Path) -> Path:
    """A temporary folder beside `final` (same file system, so os.replace can move it into place)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def replace_dir(new: Path, final: Path) -> None:
    """Move the complete folder `new` to `final`; an old `final` is renamed aside first, restored if the
    move fails and deleted only after it succeeded."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    try:
        os.replace(new, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Fill a temporary folder beside `final`; it replaces `final` only when the block succeeds."""
    final = Path(final)
    tmp = make_temp_dir(final)
    try:
        yield tmp
        replace_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wt") -> Iterator[IO]:
    """Write to a temporary file beside `path` and move it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if path.suffix.lower() in (".gz", ".xz") and "b" not in mode:
            handle = open_text(tmp + path.suffix, mode)
            tmp_target = tmp + path.suffix
            os.remove(tmp)
        else:
            handle = open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
            tmp_target = tmp
        with handle:
            yield handle
        os.chmod(tmp_target, 0o666 & ~_umask())
        os.replace(tmp_target, path)
    except BaseException:
        for leftover in (tmp, tmp + path.suffix):
            if os.path.exists(leftover):
                os.remove(leftover)
        raise
