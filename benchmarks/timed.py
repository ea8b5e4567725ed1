"""Run a command in its own process and measure it: wall and CPU seconds, peak RSS (GNU time)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_timed(
    args: list[str], env: dict | None = None, cwd: Path = ROOT, capture: bool = True, ok: tuple = (0, 1)
) -> dict:
    """{"seconds" (wall), "cpu_s" (user + system), "peak_mb", "stdout"} of `python args...` run from `cwd`;
    `capture=False` lets the output through to the console (stdout is then ""); an exit status not in `ok`
    raises."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        command = ["/usr/bin/time", "-f", "%M %U %S", "-o", stats.name, sys.executable, *args]
        start = time.perf_counter()
        proc = subprocess.run(
            command,
            cwd=cwd,
            capture_output=capture,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )
        seconds = time.perf_counter() - start
        peak_kb, user, system = stats.read().split()[-3:]
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{(proc.stderr or '')[-3000:]}")
    return {
        "seconds": seconds,
        "cpu_s": float(user) + float(system),
        "peak_mb": int(peak_kb) / 1024,
        "stdout": proc.stdout or "",
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
