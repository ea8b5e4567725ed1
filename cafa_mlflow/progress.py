"""Progress bars that suit where output goes: a live bar on a terminal; in a log file or pipe (stderr is not a
TTY), one plain line at most every NON_TTY_INTERVAL_S seconds, plus the final line."""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm import tqdm

NON_TTY_INTERVAL_S = 30.0  # seconds between progress lines when stderr is a file or a pipe


class _Lines:
    """A stream wrapper that turns tqdm's carriage-return redraws into whole lines."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").replace("\x1b[A", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(
    iterable: Any = None, *, stream: IO[str] | None = None, interval_s: float = NON_TTY_INTERVAL_S, **kwargs: Any
) -> tqdm:
    """A tqdm bar (same arguments: total, unit, desc, disable, ...) on `stream` (default stderr)."""
    stream = stream or sys.stderr
    kwargs.pop("dynamic_ncols", None)  # set here: live width on a terminal, fixed in a file
    if getattr(stream, "isatty", lambda: False)():
        return tqdm(iterable, file=stream, dynamic_ncols=True, **kwargs)
    return tqdm(
        iterable,
        file=_Lines(stream),
        mininterval=interval_s,
        maxinterval=max(interval_s, 10.0),
        ncols=100,
        ascii=True,
        **kwargs,
    )
