"""The registered model served from its own environment, without this checkout: `mlflow models serve
--env-manager uv` and `mlflow models predict --env-manager uv` answer what `cafa predict` writes.

1. Fit a small naive + knn + homology ensemble (bench_serving.fit_and_log: bundled training proteins, offline
   tiny encoder), register it in a temporary sqlite store and give it the alias `champion`.
2. `cafa predict --model-uri models:/NAME@champion` writes a submission for a few bundled test proteins.
3. `mlflow artifacts download -u models:/NAME@champion` into a new temporary folder; from there, with no
   PYTHONPATH and not this checkout as the working directory, `mlflow models serve -m model --env-manager uv` on
   127.0.0.1 (MLflow builds a virtual environment with uv from the model's requirements.txt: the model's code
   comes from its own `code/` folder, as `import cafa_mlflow` failing in that environment shows) answers a
   sequence-only request, and `mlflow models predict -i input.json -t json --env-manager uv` writes a file.
4. Both answers are compared with the submission (every protein, term and score); the first answer lines are
   printed.

Building the environment downloads the model's pinned packages from PyPI into uv's cache (minutes the first time,
seconds afterwards). torch: PyPI's Linux wheel is the CUDA build (gigabytes); uv takes a CPU wheel where one is
offered by `--find-links` (UV_FIND_LINKS; this script passes PIP_FIND_LINKS on when set, e.g. /opt/wheels here)
or by the PyTorch CPU index (`UV_TORCH_BACKEND=cpu`, or `UV_INDEX=https://download.pytorch.org/whl/cpu`).

    .venv/bin/python benchmarks/serve_own_env.py            # about 4 minutes on 2 cores with a warm uv cache
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench_serving import fit_and_log, machine_line  # benchmarks/ (run as `python benchmarks/<file>.py`)
from results_md import write_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent  # mlflow, uv and cafa of this environment (the launcher only)
NAME = "cafa-go-own-env"


def clean_env(tmp: Path) -> dict[str, str]:
    """The environment of the commands run without the checkout: no PYTHONPATH, uv and mlflow on PATH, the
    model environments under `tmp`, uv told where a CPU torch wheel lies."""
    keep = ("HOME", "LANG", "TMPDIR", "UV_CACHE_DIR", "UV_INDEX", "UV_TORCH_BACKEND", "SSL_CERT_FILE", "PIP_CERT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    # uv creates the model's environment from a Python of the model's version (python_env.yaml) found on PATH
    # (a virtual environment's interpreter does not count); without one it downloads a build from GitHub
    base = str(Path(sys.base_prefix) / "bin")
    env["PATH"] = os.pathsep.join([str(BIN), base, "/usr/local/bin", "/usr/bin", "/bin"])
    env["MLFLOW_ENV_ROOT"] = str(tmp / "envs")  # a fresh model environment each run (uv's cache keeps it quick)
    links = os.environ.get("UV_FIND_LINKS") or os.environ.get("PIP_FIND_LINKS")
    if links:
        env["UV_FIND_LINKS"] = links
    return env


def register(info, name: str) -> str:
    """Register the logged model and point the alias `champion` at it; `models:/NAME@champion`."""
    import mlflow
    from mlflow.tracking import MlflowClient

    version = mlflow.register_model(info.model_uri, name).version
    MlflowClient().set_registered_model_alias(name, "champion", version)
    return f"models:/{name}@champion"


def write_queries(tmp: Path, n: int, seed: int) -> tuple[Path, list[list[str]]]:
    from cafa_mlflow.io.fasta import read_fasta

    records = random.Random(seed).sample(list(read_fasta(ROOT / "data/sample/test/test_sequences.fasta.xz")), n)
    rows = [[r.id, r.sequence] for r in records]
    fasta = tmp / "queries.fasta"
    fasta.write_text("".join(f">{pid}\n{seq}\n" for pid, seq in rows))
    return fasta, rows


def run(cmd: list[str], env: dict, cwd: Path | None = None, timeout: float = 1800) -> float:
    """Run a command (its output shown); its wall time in seconds; SystemExit when it fails."""
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, timeout=timeout)
    if done.returncode:
        raise SystemExit(f"failed (exit {done.returncode}): {' '.join(cmd)}")
    return time.perf_counter() - start


def compare(predictions: list[dict], submission: Path, what: str) -> str:
    """SystemExit unless `predictions` (protein, term, score rows) equal the submission exactly."""
    import numpy as np
    import pandas as pd

    from cafa_mlflow.go.labels import TermMatrix, read_submission

    batch = read_submission(submission)
    got = TermMatrix.from_frame(pd.DataFrame(predictions), proteins=batch.proteins, terms=batch.terms)
    diff = np.abs(got.matrix.toarray() - batch.matrix.toarray())
    same = len(predictions) == batch.matrix.nnz and not diff.any()
    line = f"{what}: {len(predictions)} rows, {'identical to' if same else 'DIFFERENT from'} `cafa predict`"
    print(line)
    if not same:
        rows, cols = np.nonzero(diff)
        shown = [f"{batch.proteins[r]} {batch.terms[c]} {diff[r, c]:.3g}" for r, c in zip(rows[:5], cols[:5])]
        raise SystemExit(f"{what} differs from {submission} in {len(rows)} scores (max {diff.max():.3g}): {shown}")
    return line


def env_lacks_project(envs: Path, env: dict) -> list[str]:
    """Show that the environments MLflow built cannot import cafa_mlflow except from the model's code/ folder."""
    lines = []
    for python in sorted(envs.rglob("mlflow-*/bin/python")):
        probe = subprocess.run(
            [str(python), "-c", "import cafa_mlflow"], capture_output=True, text=True, env=env, cwd=envs
        )
        last = (probe.stderr.strip().splitlines() or ["imports it"])[-1]
        lines.append(f"environment {python.parent.parent.name}: `import cafa_mlflow` -> {last}")
        print(lines[-1])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=300, help="training proteins of the model")
    parser.add_argument("--queries", type=int, default=3, help="test proteins asked for")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="serve-own-env-"))
    print(f"working folder: {tmp}")
    try:
        check(tmp, args)
    finally:
        if not args.keep:
            shutil.rmtree(tmp)


def check(tmp: Path, args: argparse.Namespace) -> None:
    """Steps 1-4 of the module's description in the folder `tmp`."""
    from cafa_mlflow.serving.server import serve

    (tmp / "fit").mkdir()
    uri = register(fit_and_log(tmp / "fit", args.train, args.seed), NAME)
    tracking = f"sqlite:///{tmp}/fit/mlflow.db"
    fasta, rows = write_queries(tmp, args.queries, args.seed)
    submission = tmp / "submission.tsv"
    project_env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": tracking}
    run(
        [str(BIN / "cafa"), "predict", "--fasta", str(fasta), "--out", str(submission), "--model-uri", uri]
        + ["--threads", "1", "--embed-out", str(tmp / "emb"), "--tracking-system-metrics", "false"],
        project_env,
    )
    clean = tmp / "clean"
    clean.mkdir()
    env = clean_env(tmp)
    run(
        [str(BIN / "mlflow"), "artifacts", "download", "-u", uri, "-d", str(clean / "model")],
        {**env, "MLFLOW_TRACKING_URI": tracking},
    )
    body = {"dataframe_split": {"columns": ["protein", "sequence"], "data": rows}}
    (clean / "input.json").write_text(json.dumps(body))
    start = time.perf_counter()
    with serve("model", env=env, env_manager="uv", cwd=clean, timeout=1800) as server:
        up = time.perf_counter() - start
        print(f"served from its own uv environment after {up:.0f} s at {server.url}")
        status, answer = server.post(body)
    if status != 200:
        raise SystemExit(f"HTTP {status}: {answer}")
    first = [json.dumps(r) for r in answer["predictions"][:5]]
    print("first answer lines:", *first, sep="\n  ")
    served = compare(answer["predictions"], submission, "mlflow models serve --env-manager uv")
    took = run(
        [str(BIN / "mlflow"), "models", "predict", "-m", "model", "-i", "input.json", "-t", "json"]
        + ["-o", "predictions.json", "--env-manager", "uv"],
        env,
        cwd=clean,
    )
    predicted = json.loads((clean / "predictions.json").read_text())["predictions"]
    predicted_line = compare(predicted, submission, f"mlflow models predict --env-manager uv ({took:.0f} s)")
    probes = env_lacks_project(tmp / "envs", env)
    write_section(
        "## Served from its own environment\n\n"
        f"{date.today().isoformat()}, {machine_line()}; `python benchmarks/serve_own_env.py --train {args.train} "
        f"--queries {args.queries}` (uv from the test extra; torch's CPU wheel through UV_FIND_LINKS). The registered "
        "model, downloaded with `mlflow artifacts download` into a folder without the checkout, served by "
        f"`mlflow models serve --env-manager uv` (up after {up:.0f} s, environment built from the model's "
        "requirements) and run by `mlflow models predict --env-manager uv`, against `cafa predict` of the same "
        "proteins.\n\n```text\n"
        + "\n".join([served, predicted_line, *probes, "first answer lines:", *first])
        + "\n```\n"
    )


if __name__ == "__main__":
    main()
