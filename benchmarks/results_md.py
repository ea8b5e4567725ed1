"""The one writer of benchmarks/RESULTS.md: each benchmark refreshes its own `## Title` section in place (`publish`
prints it, writes it and names the code's commit; `stamp` and `command_line` are the header's machine, date and
command)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
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


def stamp() -> str:
    """`Machine: <host>, <processor>; date: <UTC now>`: a section's first words after its title."""
    host = f"{platform.node()}, {platform.processor() or platform.machine()}"
    return f"Machine: {host}; date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"


def command_line(script: str) -> str:
    """The command that is running, as a section quotes it: `python benchmarks/<script> <its arguments>`."""
    return " ".join(["python", f"benchmarks/{script}", *sys.argv[1:]])


def publish(text: str, write: bool = True, path: Path = RESULTS) -> None:
    """Print a section, refresh it in `path` when `write` (write_section), and print the commit of the code."""
    print(text)
    if write:
        write_section(text, path)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"code at {rev}")
