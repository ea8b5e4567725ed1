"""Checks of text inputs: a sniff of the head (NUL bytes, byte-order marks, compressed data under a plain
name) and a reader wrapper that turns faults met mid-file (truncated xz/gzip, bad UTF-8) into InputError."""

from __future__ import annotations

import lzma
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from cafa_mlflow.errors import InputError

SNIFF_BYTES = 4096  # head of a text input checked for NUL bytes and byte-order marks
# Faults of reading a compressed or text file: truncated/corrupt xz or gzip data (gzip.BadGzipFile is an
# OSError), bad UTF-8, I/O errors of the medium.
READ_ERRORS = (lzma.LZMAError, EOFError, zlib.error, UnicodeDecodeError, OSError)
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
_MAGIC = ((b"\xfd7zXZ\x00", "xz", ".xz"), (b"\x1f\x8b", "gzip", ".gz"))


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def read_error(path: str | os.PathLike, err: BaseException) -> InputError:
    """The InputError for a fault met while reading `path`."""
    suffix = Path(path).suffix.lower()
    if isinstance(err, UnicodeDecodeError):
        return InputError(
            f"{path}: not UTF-8 text (byte {err.object[err.start : err.start + 1]!r} cannot be decoded); "
            "save the file as UTF-8."
        )
    if suffix in (".xz", ".gz"):
        kind = "xz" if suffix == ".xz" else "gzip"
        return InputError(
            f"{path}: truncated or corrupt {kind} data ({one_line(err)}); download or compress the file again."
        )
    return InputError(f"{path}: cannot be read ({one_line(err)}); check the file and the disk.")


def sniff(path: Path, head: bytes) -> None:
    """Reject data that is not UTF-8 text before a parser makes sense of it line by line."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            raise InputError(
                f"{path}: {encoding} text; save it as UTF-8 (e.g. `iconv -f {encoding} -t UTF-8 {path.name}`)."
            )
    for magic, kind, suffix in _MAGIC:
        if head.startswith(magic):
            raise InputError(f"{path}: {kind}-compressed data without a {suffix} suffix; rename it to end in {suffix}.")
    if b"\x00" in head:
        raise InputError(f"{path}: binary data (NUL bytes), not a text file; check that this is the right file.")


class CheckedReader:
    """A read-only file object whose read faults (which compressed streams raise lazily, mid-file) become
    one InputError naming the file. Everything else is delegated to the wrapped stream."""

    def __init__(self, stream: IO, path: Path):
        self._stream, self._path = stream, path

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    def __enter__(self) -> CheckedReader:
        return self

    def __exit__(self, *exc) -> None:
        self._stream.close()

    def __iter__(self) -> Iterator:
        try:
            yield from self._stream
        except READ_ERRORS as err:
            raise read_error(self._path, err) from err

    def __next__(self):
        try:
            return next(self._stream)
        except READ_ERRORS as err:
            raise read_error(self._path, err) from err

    def _call(self, name: str, *args):
        try:
            return getattr(self._stream, name)(*args)
        except READ_ERRORS as err:
            raise read_error(self._path, err) from err

    def read(self, *args):
        return self._call("read", *args)

    def read1(self, *args):
        return self._call("read1", *args)

    def readinto(self, *args):
        return self._call("readinto", *args)

    def readline(self, *args):
        return self._call("readline", *args)

    def readlines(self, *args):
        return self._call("readlines", *args)
