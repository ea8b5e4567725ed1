"""How every `cafa` command and entry point runs: quiet logs, and user errors as one line with exit 2."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from cafa_mlflow.errors import CafaError


def run_entry(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run an entry point's `main(argv)`: a CafaError prints `error: <message>` and exits 2, no traceback."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main(argv)
    except CafaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
