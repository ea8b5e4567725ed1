"""Checksums of what the product writes and reads back: recorded when written, checked when read.

A folder output is sealed (`seal`): SUMS lists every file under it with its size and sha256. Readers call
`verify(path)` (one file, against the SUMS beside it) or `verify_folder(folder)` (every listed file); a
missing, short or changed file is an InputError naming it and what to run. A cache folder (sealed by
io.text.atomic_dir like any output folder) is reused only when `reusable_cache` finds it whole: a damaged or
incomplete one is named in one warning line and its owner rebuilds it. Caches that grow file by file
(embedding shards) keep the same records in their own manifest and call `check_file`. A file is checked once
per process (size and modification time unchanged), so reading it again costs nothing. Files without a
record (written by older versions) are read unchecked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cafa_mlflow.errors import InputError

if TYPE_CHECKING:
    from hashlib import _Hash as HashObject  # typeshed's name for hashlib's hash objects

SUMS = "checksums.json"
ALGORITHM = "sha256"
_CHUNK = 1 << 20
_checked: set[tuple[str, int, int, str]] = set()  # (path, size, mtime_ns, sha256) verified in this process
SKIP = frozenset({SUMS, ".cafa-mlflow"})  # the marker changes nothing a reader uses
REBUILD = "it is prepared again now"
log = logging.getLogger(__name__)


def hash_file(h: HashObject, path: str | os.PathLike) -> HashObject:
    """Feed a file's bytes to the hash object `h` in chunks; returns `h` (content keys of caches use it too)."""
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            h.update(chunk)
    return h


def stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    """(absolute path, size, modification time in ns) of a file: what tells, within a process, that a file read
    before is unchanged (as `check_file` does; content keys of caches are computed once per stamp)."""
    stat = os.stat(path)
    return str(Path(path).absolute()), stat.st_size, stat.st_mtime_ns


def digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (hex)."""
    return hash_file(hashlib.new(ALGORITHM), path).hexdigest()


def record(path: str | os.PathLike) -> dict:
    """What `check_file` compares a file with later: its size and sha256."""
    return {"bytes": os.path.getsize(path), ALGORITHM: digest(path)}


def _damaged(path: Path, reason: str, fix: str) -> InputError:
    return InputError(f"{path}: damaged ({reason}); {fix}")


def check_file(path: str | os.PathLike, expected: dict, fix: str) -> None:
    """InputError naming `path` and `fix` when the file is missing, shorter/longer than recorded or its
    checksum differs from `expected` (a `record`)."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise _damaged(path, "file missing", fix) from None
    size, want = int(expected.get("bytes", -1)), expected.get(ALGORITHM)
    if size >= 0 and stat.st_size != size:
        short = "short file" if stat.st_size < size else "file longer than written"
        raise _damaged(path, f"{short}: {stat.st_size} of {size} bytes", fix)
    key = (str(path.absolute()), stat.st_size, stat.st_mtime_ns, str(want))
    if want is None or key in _checked:
        return
    if digest(path) != want:
        raise _damaged(path, f"{ALGORITHM} checksum differs from the one recorded when it was written", fix)
    _checked.add(key)


def checksum_list(folder: str | os.PathLike) -> dict:
    """What folder/SUMS records: every file under `folder` (relative paths) with its size and checksum
    (io.text.seal writes it)."""
    folder = Path(folder)
    files = {
        p.relative_to(folder).as_posix(): record(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name not in SKIP and not p.name.endswith(".tmp")
    }
    return {"algorithm": ALGORITHM, "files": files}


def _records(folder: Path) -> dict | None:
    path = folder / SUMS
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{path}: damaged checksum list; re-run the step that wrote {folder}.") from None
    return files if isinstance(files, dict) else {}


def default_fix(path: Path) -> str:
    return f"re-run the step that wrote {path.parent} (its outputs are replaced whole)"


def verify(path: str | os.PathLike, fix: str | None = None) -> None:
    """Check one file against the SUMS of the nearest sealed folder above it (no record: not checked)."""
    path = Path(path)
    for folder in path.parents:
        files = _records(folder)
        if files is not None:
            entry = files.get(path.relative_to(folder).as_posix())
            if entry is not None:
                check_file(path, entry, fix or default_fix(path))
            return
        if folder == path.parent.parent.parent:  # look at most three levels up (member/model/file)
            return


def verify_folder(folder: str | os.PathLike, fix: str | None = None) -> bool:
    """Check every file folder/SUMS lists (missing ones included); False when the folder has no SUMS."""
    folder = Path(folder)
    files = _records(folder)
    if files is None:
        return False
    for name, entry in sorted(files.items()):
        check_file(folder / name, entry, fix or default_fix(folder / name))
    return True


def reusable_cache(folder: str | os.PathLike, required: Sequence[str]) -> bool:
    """Whether a cache folder can be reused as it is: it exists, has its checksum list, holds every `required`
    file and every listed file is as recorded. A folder that is there but fails (a killed or older build, a
    deleted or damaged file) is named in one warning line; False tells the caller, which owns the cache, to
    build it again (io.text.atomic_dir replaces the folder whole)."""
    folder = Path(folder)
    if not folder.exists():
        return False
    try:
        if not folder.is_dir() or not (folder / SUMS).is_file():
            raise InputError(f"{folder}: incomplete cache (no {SUMS}: an interrupted or older build); {REBUILD}")
        for name in required:
            if not (folder / name).is_file():
                raise _damaged(folder / name, "file missing", REBUILD)
        verify_folder(folder, REBUILD)
    except InputError as err:
        log.warning("%s", err)
        return False
    return True
