"""`predict --fasta FASTA --out PATH`: the registered champion (or any model URI) scores a FASTA into a
CAFA-6 submission; the FASTA is embedded first (same settings as the model's members) when they need it.

`--shard i/N` scores the i-th of N contiguous blocks of the FASTA into PATH.shard-i-of-N (any scheduler, e.g. a
SLURM array; `cafa merge-shards --out PATH` joins them); `--engine ray` scores on a Ray cluster (`--ray-address`).
An existing --out or --evidence is replaced only when cafa-mlflow wrote it (cafa_mlflow/io/outputs.py)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.console import run_entry
from cafa_mlflow.tracking import runs
from cafa_mlflow.workflows.predict_job import PredictJob
from cafa_mlflow.workflows.submit import submit


def main(argv: Sequence[str] | None = None) -> Path:
    params, _ = parse_params(argv, "cafa predict", __doc__, own="predict")
    job = PredictJob.from_params(params)
    job.claim_outputs()  # before loading the model and embedding: fail now, not after all the work
    if job.engine == "ray":
        from cafa_mlflow.workflows.predict_ray import preflight

        preflight(job)  # a missing Ray or an unreachable cluster is said before the run opens
    extra = {**params.predict.to_dict(), "fasta": job.fasta, "model_uri": job.model_uri}
    with runs.start_run(params, "predict", extra_params=extra):
        done = submit(job)
        if done.ray_workers is not None:
            runs.log_params({"ray_workers": done.ray_workers})
        runs.log_params({"reused_scores": done.reused})  # written from the chain's saved scores, nothing computed
        runs.set_tags({"reuse_reason": done.reuse_reason})
        runs.log_metrics({"submission_lines": done.lines, "submission_proteins": done.proteins})
        runs.log_artifacts([done.path] + ([job.manifest] if job.manifest else []), "submission")
        if job.evidence_written:
            runs.log_artifacts([job.evidence_written], "evidence")
    what = f"shard {job.shard[0]} of {job.shard[1]}: " if job.shard else ""
    print(f"{what}submission: {done.path} ({done.proteins} proteins, {done.lines} lines) from {job.model_uri}")
    return done.path


if __name__ == "__main__":
    sys.exit(run_entry(main))
