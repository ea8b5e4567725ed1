"""Run a command in its own process and measure it: wall and CPU seconds, peak RSS (GNU time)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_timed(args: list[str], env: dict | None = None) -> dict:
    """{"seconds" (wall), "cpu_s" (user + system), "peak_mb", "stdout"} of `python args...` run from the repository root."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        command = ["/usr/bin/time", "-f", "%M %U %S", "-o", stats.name, sys.executable, *args]
        start = time.perf_counter()
        proc = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )
        seconds = time.perf_counter() - start
        peak_kb, user, system = stats.read().split()[-3:]
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {
        "seconds": seconds,
        "cpu_s": float(user) + float(system),
        "peak_mb": int(peak_kb) / 1024,
        "stdout": proc.stdout,
    }


def evaluate_args(folder: Path, pred: str | Path, out_json: Path) -> list[str]:
    """`cafa evaluate` (the entry point module) on a folder made by scale_inputs.make_inputs."""
    return [
        "-m",
        "pipelines.evaluate",
        "--obo",
        str(folder / "go.obo"),
        "--truth",
        str(folder / "truth.tsv"),
        "--pred",
        str(pred),
        "--ia",
        str(folder / "ia.tsv"),
        "--out-json",
        str(out_json),
    ]
