"""Open plain, gzip or xz text files by their suffix."""
from __future__ import annotations

import gzip
import lzma
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from cafa_mlflow.errors import InputError


def open_text(path: str | os.PathLike, mode: str = "rt") -> IO[str]:
    """Open `path` as text; `.gz` and `.xz` are (de)compressed transparently."""
    path = Path(path)
    if "r" in mode and not path.is_file():
        raise InputError(f"{path}: file not found; check the path (and params.yaml's data block).")
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8")
    if suffix == ".xz":
        return lzma.open(path, mode, encoding="utf-8")
    return open(path, mode, encoding="utf-8")


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
