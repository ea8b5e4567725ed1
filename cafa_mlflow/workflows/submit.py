"""`cafa predict`'s work inside its run: score the job's FASTA in one process, as one shard of N, or on a Ray
cluster (PredictJob.engine / shard), mark the written files as the product's, then check the submission
against the submission rules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.submission import validate_submission
from cafa_mlflow.workflows.predict_batches import predict_fasta
from cafa_mlflow.workflows.predict_job import PredictJob
from cafa_mlflow.workflows.shards import predict_shard


@dataclass
class Submitted:
    path: Path  # the submission, or the shard's part file
    lines: int
    proteins: int  # proteins with at least one line
    ray_workers: int | None = None  # actors of the Ray engine, None elsewhere


def submit(job: PredictJob) -> Submitted:
    """Run the job's engine, then validate what it wrote; InputError if the writer broke a rule. Shards and Ray
    actors load the pinned model version (the one the alias names now, even if it moves meanwhile)."""
    from cafa_mlflow.serving.model_loader import pinned_uri

    pinned, workers = pinned_uri(job.model_uri), None
    if job.engine == "ray":
        from cafa_mlflow.workflows.predict_ray import predict_ray

        lines, workers = predict_ray(job, pinned)
    elif job.shard:
        lines = predict_shard(job, pinned).lines
    else:
        lines = predict_fasta(job)
    job.mark_outputs()
    if job.shard and not lines:  # an empty part is valid: its proteins had no score
        return Submitted(job.written, 0, 0, workers)
    found = validate_submission(job.written, max_terms=job.submission.max_terms)
    if found.counts:
        raise InputError(
            f"{job.written}: the written submission breaks {sum(found.counts.values())} rules, "
            f"e.g. {found[0]}; please report this as a bug."
        )
    return Submitted(job.written, lines, found.n_proteins, workers)
