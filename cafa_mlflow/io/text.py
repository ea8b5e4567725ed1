"""Open plain, gzip or xz text files by their suffix; write files and folders atomically.

Every fault of an input (corrupt or truncated compression, binary or UTF-16 data, bad UTF-8) is an
InputError naming the file, and every fault of an output (full disk, read-only or forbidden location) an
OutputError naming it, whether it happens when the file is opened or halfway through reading or writing.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import lzma
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from cafa_mlflow.errors import InputError, OutputError
from cafa_mlflow.io import integrity, outputs
from cafa_mlflow.io.read_checks import READ_ERRORS, SNIFF_BYTES, CheckedReader, one_line, read_error, sniff

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "file too large for the file system",
}


def _open(path: Path, mode: str, encoding: str | None) -> IO:
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, mode, encoding=encoding)
    if suffix == ".xz":
        return lzma.open(path, mode, encoding=encoding)
    return open(path, mode, encoding=encoding)


def open_text(path: str | os.PathLike, mode: str = "rt") -> IO:
    """Open `path` as UTF-8 text (bytes with a 'b' mode); `.gz` and `.xz` are (de)compressed transparently.

    Reading: the file must exist and hold text (no NUL bytes, no UTF-16/32); a UTF-8 byte-order mark is
    skipped in text mode; corrupt or truncated compressed data and bad UTF-8 raise InputError naming it."""
    path = Path(path)
    if "r" not in mode:
        return _open(path, mode, None if "b" in mode else "utf-8")
    if not path.is_file():
        raise InputError(f"{path}: file not found; check the path (and params.yaml's data block).")
    try:
        with _open(path, "rb", None) as raw:
            head = raw.read(SNIFF_BYTES)
    except READ_ERRORS as err:
        raise read_error(path, err) from err
    sniff(path, head)
    return CheckedReader(_open(path, mode, None if "b" in mode else "utf-8-sig"), path)


def write_error(path: str | os.PathLike, err: OSError) -> OutputError:
    """The OutputError for a fault met while writing `path` (which keeps its previous content)."""
    code = errno.errorcode.get(err.errno or 0, "")
    reason = _REASONS.get(err.errno, err.strerror or one_line(err))
    return OutputError(
        f"{path}: cannot write ({reason}{', ' + code if code else ''}); nothing there was changed: "
        "free space or choose another output location."
    )


def _is_ours(err: BaseException, *paths: Path) -> bool:
    """An OSError about one of `paths` (or below them), or a write fault of an open handle (no file name)."""
    if not isinstance(err, OSError):
        return False
    if err.filename is None:
        return err.errno in _REASONS or err.errno == errno.EIO
    name = Path(os.fsdecode(err.filename))
    return any(name == p or p in name.parents for p in paths)


def check_writable(path: str | os.PathLike, folder: bool = False, replace: bool = False) -> Path:
    """Fail fast, before long work: create the output's folder (`path` itself when `folder`, else its
    parent) and write, sync and delete a probe file there. Raises OutputError naming `path`.
    `replace`: the step replaces the folder `path` whole, so it must be one the product made
    (outputs.check_replaceable)."""
    path = Path(path)
    if replace:
        outputs.check_replaceable(path)
    elif not folder:
        outputs.check_file_output(path)
    target = path if folder else path.parent
    if not folder and path.is_dir():
        raise OutputError(f"{path}: is a folder, but a file is written there; choose a file name.")
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, but a folder is written there; choose another location.")
    created = [p for p in (target, *target.parents) if not p.exists()]  # removed again: a probe leaves nothing
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=target, prefix=".write-probe.")
        try:
            os.write(fd, b"probe")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.remove(probe)
        if not folder and path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    except OSError as err:
        raise write_error(path, err) from err
    finally:
        for folder_made in created:
            with contextlib.suppress(OSError):
                folder_made.rmdir()
    return path


def claim_files(
    inputs: Mapping[str, str | os.PathLike | None], outputs_: Mapping[str, str | os.PathLike | None]
) -> None:
    """Before any work, for a command's output files (keys: the flags naming them; None skipped): none is an
    input or another output (outputs.check_distinct), each is missing or the product's
    (outputs.check_file_replaceable) and can be written (check_writable). OutputError, one line, otherwise."""
    outputs.check_distinct(inputs, outputs_)
    for flag, path in outputs_.items():
        if path is not None:
            outputs.check_file_replaceable(path, flag)
            check_writable(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_temp_dir(final: Path) -> Path:
    """A new, marked temporary folder beside `final` (same file system, so it can be swapped in)."""
    try:
        tmp = outputs.temp_beside(final)
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as err:
        raise write_error(final, err) from err
    return tmp


def replace_dir(new: Path, final: Path) -> None:
    """Publish the complete folder `new` at `final` in one atomic step (outputs.swap_in)."""
    outputs.swap_in(new, final)


@contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Fill a temporary folder beside `final`; it replaces `final` only when the block succeeds.

    `final` must be missing, empty or a folder the product made (outputs.check_replaceable, also checked
    before the swap); the new folder carries the product's marker and a checksum list (`seal`), and
    is swapped in atomically (a kill leaves the whole old or the whole new folder). A write fault (full disk,
    read-only, no permission) is an OutputError naming `final`, which is kept."""
    final = Path(final)
    outputs.check_replaceable(final)
    tmp = make_temp_dir(final)
    outputs._step("temp-made")
    try:
        yield tmp
        outputs._step("filled")
        seal(tmp)
        outputs._step("sealed")
        outputs.check_replaceable(final)
        replace_dir(tmp, final)
    except OSError as err:
        if _is_ours(err, tmp, final):
            raise write_error(final, err) from err
        raise
    except OutputError as err:  # from an atomic_write inside: name the file where it was going to be
        if str(err).startswith(str(tmp)):
            raise OutputError(f"{final}{str(err)[len(str(tmp)) :]}") from err
        raise
    finally:
        if tmp.exists():
            with contextlib.suppress(OSError, OutputError):
                outputs.remove_tree(tmp)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wt") -> Iterator[IO]:
    """Write to a temporary file beside `path` and move it into place only on success.
    A write fault (full disk, read-only, no permission) is an OutputError naming `path`, which is kept."""
    path = outputs.check_file_output(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as err:
        raise write_error(path, err) from err
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
    except BaseException as err:
        for leftover in (tmp, tmp + path.suffix):
            with contextlib.suppress(OSError):
                os.remove(leftover)
        if _is_ours(err, Path(tmp), Path(tmp + path.suffix), path):
            raise write_error(path, err) from err
        raise


def jsonable(obj: Any) -> Any:
    """NaN -> None (valid JSON), recursively through mappings and lists."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1, sort_keys: bool = False) -> None:
    """`obj` as JSON at `path` (NaN written as null), written atomically (atomic_write). The one JSON writer."""
    with atomic_write(path) as handle:
        json.dump(jsonable(obj), handle, indent=indent, sort_keys=sort_keys)
        handle.write("\n")


def seal(folder: str | os.PathLike) -> dict:
    """Record every file under `folder` with its checksum in folder/checksums.json (readers verify it)."""
    sums = integrity.checksum_list(folder)
    write_json(Path(folder) / integrity.SUMS, sums, sort_keys=True)
    return sums["files"]


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """`dst` as a hard link to `src` when the file system allows (databases and checkpoints are large), else a
    copy; a file already at `dst` is replaced."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
