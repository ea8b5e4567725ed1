"""The `main` chain: every step as its own process (`python -m pipelines.<step>`), each a nested MLflow run
under the caller's run, with exactly the caller's resolved parameters; returns one row per step."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cafa_mlflow.errors import CafaError
from cafa_mlflow.evaluation.tables import table_path
from cafa_mlflow.io.readback import read_json
from cafa_mlflow.io.text import check_writable, claim_files
from cafa_mlflow.predictors.registry import MEMBER_STEPS
from cafa_mlflow.tracking import runs
from cafa_mlflow.workflows.common import member_folder
from cafa_mlflow.workflows.predict_job import PredictJob

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params

STEPS = (  # (label, entry point module, extra flags): the members come from the registry
    ("prepare", "prepare", ()),
    ("embed", "embed", ()),
    *((name if step == "member" else step, step, tuple(flags)) for name, (step, *flags) in MEMBER_STEPS.items()),
    ("ensemble", "ensemble", ()),
    ("evaluate", "evaluate", ()),
    ("predict", "predict", ()),
)
KEY_METRICS = ("test_f_w_mean", "val_f_w_mean", "submission_lines")  # the first a step logged is its key metric


def check_outputs(params: Params) -> None:
    """Fail before long work when an output location of the chain cannot be written (OutputError naming it)."""
    for folder in (
        params.prepare.out,
        params.embed.out,
        params.outputs.predictions,
        params.outputs.metrics,
        params.homology.out,
        params.reference.out,
    ):
        check_writable(folder, folder=True)
    for folder in (  # folders a chain step replaces whole: only ones the product made
        params.prepare.out,
        *(member_folder(params, name) for name in (*params.ensemble.members, "ensemble")),
    ):
        check_writable(folder, folder=True, replace=True)
    job = PredictJob.from_params(params)
    claim_files(  # the single files the chain writes: its own or new, none the same path, none its FASTA
        {"predict --fasta": job.fasta},
        {
            **{f"predict {flag}": path for flag, path in job.outputs().items()},
            "evaluate --out-json": params.evaluate.out_json,
            "the table beside evaluate --out-json": table_path(params.evaluate.out_json),
        },
    )


def run_chain(params: Params, parent_run_id: str, steps: tuple = STEPS) -> list[dict[str, Any]]:
    """Run `steps` in order under run `parent_run_id`; a failing step stops the chain with its exit status.
    Returns one row per step: {step, seconds, metric, value}."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="cafa-main-") as tmp:
        resolved = Path(tmp) / "params.yaml"
        # tune's search space has dotted keys of its own; no step of the chain reads the tune block
        resolved.write_text(yaml.safe_dump({k: v for k, v in params.to_dict().items() if k != "tune"}))
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}  # children open runs of their own
        env[runs.PARENT_RUN_ENV] = parent_run_id
        for label, module, extra in steps:
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", f"pipelines.{module}", "--params-file", str(resolved), *extra]
            code = subprocess.run(cmd, env=env, check=False).returncode
            seconds = time.perf_counter() - t0
            if code != 0:
                raise CafaError(f"step {label} failed (exit {code}); its message is above. Fix it and run again.")
            found = runs.latest_child_metrics(parent_run_id, KEY_METRICS)
            metric = next((k for k in KEY_METRICS if k in found), None)
            rows.append({"step": label, "seconds": seconds, "metric": metric, "value": found.get(metric)})
    return rows


def final_metrics(params: Params) -> dict[str, float]:
    """The submitted model's validation and test metrics (the ensemble's report), empty when absent."""
    report = Path(params.outputs.metrics) / "ensemble_val.json"
    return read_json(report).get("ensemble", {}) if report.is_file() else {}
