"""The one writer of benchmarks/RESULTS.md: each benchmark refreshes its own `## Title` section in place."""

from __future__ import annotations

import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n"


def write_section(text: str, path: Path = RESULTS) -> None:
    """Replace the section whose first line equals `text`'s first line where it stands (or append it), atomically.

    A section runs from its `## Title` line to the next `## ` line; the other sections stay byte for byte."""
    title = text.lstrip().splitlines()[0].strip()
    old = path.read_text() if path.exists() else HEADER
    section = text.strip("\n") + "\n"
    at = ("\n" + old).find("\n" + title + "\n")  # the title line's offset in `old`, or -1
    if at >= 0:
        end = old.find("\n## ", at + len(title))
        new = old[:at] + section + (old[end:] if end >= 0 else "")
    else:
        new = old.rstrip("\n") + "\n\n" + section
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)
