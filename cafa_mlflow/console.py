"""What the console shows: logger levels set once (MLflow's chatter quiet), each warning shown once, progress
bars that suit where output goes, and the step table `main` prints at its end."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any

from tqdm import tqdm

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
# loggers whose INFO lines flood the console: system-metrics start/stop, database set-up, experiment creation
QUIET_LOGGERS = ("mlflow", "alembic", "sqlalchemy", "urllib3", "numexpr", "matplotlib", "optuna")
KEEP_INFO = ("mlflow.tracking._model_registry",)  # "Created version '3' of model 'cafa-go'" stays visible
# progress bars: a live bar on a terminal; in a log file or pipe one plain line at most every NON_TTY_INTERVAL_S
NON_TTY_INTERVAL_S = 30.0  # seconds between progress lines when stderr is a file or a pipe


class OnceFilter(logging.Filter):
    """Let a warning (or error) through the first time its logger emits that text; drop the repeats."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """The one place logger levels are set (call it once per process, e.g. from the entry-point runner).
    Idempotent. Python warnings go through logging, so they are shown once as well."""
    # MLflow installs its own handler and levels when imported: tracking.runs.start_run calls this again after it
    logging.basicConfig(level=level, format=LOG_FORMAT)
    logging.getLogger().setLevel(level)  # also when a handler was installed before (basicConfig skips then)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    for name in KEEP_INFO:
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(True)
    once = next((f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, OnceFilter)), None)
    once = once or OnceFilter()
    for logger in (logging.getLogger(), logging.getLogger("mlflow")):
        for handler in logger.handlers:  # console handlers only: a log file or a test's capture sees everything
            if getattr(handler, "stream", None) in (sys.stderr, sys.stdout) and once not in handler.filters:
                handler.addFilter(once)


def format_step_table(rows: Sequence[Mapping]) -> str:
    """Rows {step, seconds, metric, value} (metric/value may be empty) as an aligned text table with a total."""
    lines = [("step", "wall time", "key metric")]
    for row in rows:
        value = row.get("value")
        shown = "" if value is None else f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"  # counts, scores
        metric = f"{row['metric']} = {shown}" if row.get("metric") and shown else ""
        lines.append((str(row["step"]), format_seconds(row["seconds"]), metric))
    lines.append(("total", format_seconds(sum(r["seconds"] for r in rows)), ""))
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    text = [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c}".rstrip() for a, b, c in lines]
    rule = "-" * len(max(text, key=len))
    return "\n".join([text[0], rule, *text[1:-1], rule, text[-1]])


def format_seconds(seconds: float) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def final_message(rows: Sequence[Mapping], submission: str, url: str, ui_command: str = "make ui") -> str:
    """The end of `main`: the step table, where the submission is, and how to open the runs."""
    return (
        f"{format_step_table(rows)}\n\nSubmission: {submission}\n"
        f"Runs: `{ui_command}`, then open {url}\n(compare train runs in the terminal: `make compare`)"
    )


TERM_GRACE_S = 10.0  # on SIGTERM: seconds child processes get to clean up (as on Ctrl-C) before they are killed


def end_children(grace_s: float = TERM_GRACE_S) -> None:
    """SIGTERM to every descendant process (a DIAMOND search, a chain step and its own children); SIGKILL to
    those still running after `grace_s` seconds."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _on_sigterm(signum: int, frame: object) -> None:
    from cafa_mlflow.errors import Terminated

    end_children()
    raise Terminated()


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While inside: SIGTERM ends the child processes, then unwinds this process as Ctrl-C does (finally blocks
    remove temporary folders, unfinished outputs are not published). Only in the main thread (Python's rule)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


ON_USER_ERROR: list[Callable[[BaseException], None]] = []  # tracking adds: record the error on the launcher's run


def run_entry(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run an entry point's `main(argv)` and return its exit status: user and environment faults print one
    `error:` line (exit 2) and are recorded on the open MLflow run, only a bug prints a traceback; SIGTERM
    ends the child processes and unwinds as Ctrl-C does (exit 143)."""
    from cafa_mlflow.errors import CafaError, run_cli

    def body() -> object:
        try:
            return main(argv)
        except CafaError as err:
            for hook in ON_USER_ERROR:
                hook(err)
            raise

    configure_logging()
    with sigterm_unwinds():
        return run_cli(body)


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
