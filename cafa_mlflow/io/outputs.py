"""Output folders the product owns: the marker, the ownership check, the atomic swap and leftover cleanup.

- Marker: every folder an output step publishes carries MARKER (written into the folder while it is built).
  A folder is replaced or deleted only when it is empty or carries it (`check_replaceable`); anything else
  (a user's folder, `/etc`, the home folder, the working folder) stops the step before any work.
- Swap: `swap_in(new, final)` publishes a finished folder in one step. On Linux the two paths are exchanged
  by renameat2(RENAME_EXCHANGE), so after a kill at any instant `final` is the whole old or the whole new
  folder; elsewhere (or on file systems without it) two renames, and a kill between them is repaired by the
  next run (`clean_leftovers` moves the old folder back).
- Leftovers: temporaries are named `.<name>.cafa-<pid>-<random>` beside the folder; the next run of the
  step removes those of dead processes that carry the marker (`clean_leftovers`).
- Single files a command writes (`--out`, `--evidence`, `--out-json`, ...): when one is complete, the sidecar
  `.<name>.cafa-mlflow` beside it records its size and sha256 (`mark_file`). A file is replaced only when it is
  missing or its sidecar matches it (`check_file_replaceable`): a user's file, or one changed since, is kept.
  An empty sidecar (`touch`) vouches for an output of an older cafa-mlflow.
- Paths of one command: no output may be an input or another output (`check_distinct`), refused before any work.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from cafa_mlflow.errors import OutputError
from cafa_mlflow.io import integrity

MARKER = ".cafa-mlflow"  # JSON {"product", "pid", "created"}: written when the product created the folder
PRODUCT = "cafa-mlflow"
_TEMP = re.compile(r"^\.(?P<name>.+)\.cafa-(?P<pid>\d+)-(?P<tag>[0-9a-f]+)(?P<old>\.old)?$")
_RENAME_EXCHANGE = 2
# test hook: called with the name of each step of a swap (a test makes the process exit there)
after_step: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if after_step is not None:
        after_step(name)


def write_marker(folder: Path) -> None:
    """Mark `folder` as created by the product (so a later run may replace it)."""
    (folder / MARKER).write_text(json.dumps({"product": PRODUCT, "pid": os.getpid(), "created": time.time()}) + "\n")


def is_marked(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def _protected(path: Path) -> str | None:
    """Why `path` may never be replaced or deleted (a system or home folder, or one holding the working folder)."""
    path = Path(os.path.abspath(path))
    if path.parent == path:
        return "the file system root"
    if path.parent == Path(path.anchor):
        return "a top-level system folder"
    with contextlib.suppress(RuntimeError, KeyError):
        if path == Path.home().absolute():
            return "the home folder"
    cwd = Path.cwd().absolute()
    if path == cwd or path in cwd.parents:
        return "the working folder or one that holds it"
    return None


SYSTEM = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/boot", "/dev", "/proc", "/sys")


def check_file_output(path: str | os.PathLike) -> Path:
    """Stop (OutputError naming `path`) when an output file would land in a system folder (/etc, /usr, ...)."""
    path = Path(path)
    real = Path(os.path.realpath(path))
    if any(real == Path(s) or Path(s) in real.parents for s in SYSTEM if sys.platform != "win32"):
        raise OutputError(
            f"{path}: is inside a system folder; an output there could replace its files: choose another --out."
        )
    return path


def check_replaceable(folder: str | os.PathLike) -> Path:
    """Stop (OutputError naming `folder`) unless the folder is missing, empty, or one the product made
    (it carries MARKER); system, home and working folders are refused whatever they hold. Also removes the
    leftovers of killed runs beside it."""
    folder = Path(folder)
    why = _protected(folder)
    if why is not None:
        raise OutputError(f"{folder}: is {why}; an output folder there would replace it: choose another --out.")
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise OutputError(f"{folder}: is not a folder this step created; remove it or choose another --out.")
    if folder.is_dir() and not is_marked(folder) and any(folder.iterdir()):
        raise OutputError(
            f"{folder}: holds files this step did not write (no {MARKER} marker), so it is not replaced; "
            f"move them away or choose another --out (an output of an older cafa-mlflow: `touch {folder}/{MARKER}`)."
        )
    clean_leftovers(folder)
    return folder


def temp_beside(final: Path) -> Path:
    """A new, marked temporary folder beside `final` (same file system, so it can be swapped in)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.cafa-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        write_marker(tmp)
    except BaseException:
        tmp.rmdir()
        raise
    return tmp


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):  # kernel or file system lacks it
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def swap_in(new: Path, final: Path) -> None:
    """Publish the finished folder `new` at `final`, replacing a folder there in one atomic step; the old
    folder is deleted afterwards. A kill at any instant leaves the whole old or the whole new folder."""
    if not os.path.lexists(final):
        os.rename(new, final)  # atomic; an empty folder created meanwhile is replaced, a full one refused
        _step("renamed")
        return
    if _exchange(new, final):  # `new` now holds the old folder (marked: only marked folders are replaced)
        _step("exchanged")
        _remove_old(new)
        return
    old = new.with_name(new.name + ".old")  # fallback: two renames; clean_leftovers repairs a kill between
    os.rename(final, old)
    _step("moved-aside")
    os.rename(new, final)
    _step("renamed")
    _remove_old(old)


def _remove_old(folder: Path) -> None:
    """Delete the replaced folder; what a fault or kill leaves is a marked leftover the next run removes."""
    with contextlib.suppress(OSError, OutputError):
        remove_tree(folder)
    _step("old-removed")


def remove_tree(folder: Path) -> None:
    """Delete a folder the product made: everything but the marker first, the marker last, so a kill
    halfway leaves a marked leftover that the next run removes."""
    if not folder.is_dir():
        return
    if not is_marked(folder) and any(folder.iterdir()):
        raise OutputError(f"{folder}: not deleted: it holds files the product did not write (no {MARKER}).")
    for entry in folder.iterdir():
        if entry.name == MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    with contextlib.suppress(FileNotFoundError):
        (folder / MARKER).unlink()
    folder.rmdir()


def _pid_alive(pid: int, since: float | None) -> bool:
    """Whether process `pid` runs and started no later than `since` (a reused pid is a new process)."""
    import psutil

    if pid == os.getpid():
        return True
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return since is None or process.create_time() <= since + 1.0
    except psutil.Error:
        return False


def _created(folder: Path, pid: int) -> float | None:
    """When process `pid` made the folder (None: another process made it, e.g. an old folder swapped out)."""
    try:
        marker = json.loads((folder / MARKER).read_text())
        return float(marker["created"]) if int(marker["pid"]) == pid else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def clean_leftovers(final: str | os.PathLike) -> list[Path]:
    """Remove `.<name>.cafa-<pid>-*` temporaries beside `final` left by dead processes (marked ones only);
    when `final` itself is missing because a run died between the fallback's two renames, move the old
    folder back first. Returns the removed paths."""
    final = Path(final)
    parent = final.parent
    if not parent.is_dir():
        return []
    removed = []
    for entry in sorted(parent.iterdir()):
        match = _TEMP.match(entry.name)
        if not match or match["name"] != final.name or not entry.is_dir() or entry.is_symlink():
            continue
        pid = int(match["pid"])
        if not is_marked(entry) or _pid_alive(pid, _created(entry, pid)):
            continue
        if match["old"] and not os.path.lexists(final):
            os.rename(entry, final)  # the kill came between the two renames: the old folder is whole
            continue
        with contextlib.suppress(OSError):
            remove_tree(entry)
            removed.append(entry)
    return removed


def file_marker(path: str | os.PathLike) -> Path:
    """The sidecar saying the product wrote the file `path`: `.<name>.cafa-mlflow` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}{MARKER}")


def mark_file(path: str | os.PathLike) -> None:
    """Record, once the file `path` is complete, that the product wrote it: its size and sha256 in its sidecar
    (written atomically; a file changed afterwards no longer matches it)."""
    marker = file_marker(path)
    tmp = marker.with_name(f"{marker.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps({"product": PRODUCT, **integrity.record(path)}) + "\n")
    os.replace(tmp, marker)


def wrote_file(path: str | os.PathLike) -> bool:
    """Whether the product wrote the file `path` as it is now (its sidecar matches; an empty sidecar vouches)."""
    marker = file_marker(path)
    try:
        text = marker.read_text().strip()
        if not text:
            return True
        mark = json.loads(text)
        return int(mark["bytes"]) == os.path.getsize(path) and mark[integrity.ALGORITHM] == integrity.digest(path)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def check_file_replaceable(path: str | os.PathLike, flag: str) -> Path:
    """Stop (OutputError naming `path` and `flag`) unless the output file `path` is missing or the product
    wrote it as it is now (`wrote_file`; a link, e.g. into DVC's cache, is replaced itself, never its target)."""
    path = Path(path)
    if not os.path.lexists(path) or path.is_dir():  # a folder is refused by the writability check
        return path
    if not path.is_file() or not wrote_file(path):
        marker = file_marker(path)
        raise OutputError(
            f"{path}: exists and cafa-mlflow did not write it (no matching {marker.name} beside it, where the "
            f"product records the size and sha256 of each file it writes), so it is not replaced; move it away or "
            f"choose another {flag} (an unchanged output of an older cafa-mlflow: `touch {marker}`)."
        )
    return path


def _identity(path: str | os.PathLike) -> object:
    """What makes two names the same file: device and inode when it exists (links too), else the real path."""
    try:
        stat = os.stat(path)
        return stat.st_dev, stat.st_ino
    except OSError:
        return os.path.realpath(path)


def check_distinct(
    inputs: Mapping[str, str | os.PathLike | None], outputs: Mapping[str, str | os.PathLike | None]
) -> None:
    """Stop (one OutputError naming both flags and the path) when an output is one of the `inputs` or two
    `outputs` are one file (keys: the flags that named them; None values are skipped)."""
    seen: dict[object, str] = {_identity(p): flag for flag, p in inputs.items() if p is not None}
    for flag, path in outputs.items():
        if path is None:
            continue
        key = _identity(path)
        if key in seen:
            other = seen[key]
            what = "an input" if other in inputs else "another output"
            raise OutputError(
                f"{flag} and {other} name the same file {path}: the output would replace {what}; "
                "give each its own path."
            )
        seen[key] = flag


def mark_files(*paths: str | os.PathLike | None) -> None:
    """mark_file for each written file (None skipped)."""
    for path in paths:
        if path is not None:
            mark_file(path)
