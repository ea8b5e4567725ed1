"""How every `cafa` command and entry point runs: quiet logs, and user errors as one line with exit 2."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from cafa_mlflow.errors import run_cli


def run_entry(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run an entry point's `main(argv)` and return its exit status: user and environment faults print one
    `error:` line (exit 2), only a bug prints a traceback (see errors.run_cli)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_cli(lambda: main(argv))
