"""The one writer of benchmarks/RESULTS.md: each benchmark refreshes its own `## Title` section in place."""

from __future__ import annotations

import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n"


def write_section(text: str, path: Path = RESULTS) -> None:
    """Replace the section whose first line equals `text`'s first line (or append it), atomically."""
    title = text.lstrip().splitlines()[0].strip()
    old = path.read_text() if path.exists() else HEADER
    start = old.find(title + "\n")
    if start >= 0:
        nxt = old.find("\n## ", start + len(title))
        old = old[:start].rstrip("\n") + ("\n\n" + old[nxt + 1 :] if nxt >= 0 else "")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(old.rstrip("\n") + "\n\n" + text.strip("\n") + "\n")
    os.replace(tmp, path)
