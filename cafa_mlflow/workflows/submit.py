"""`cafa predict`'s work inside its run: write the scores the chain saved when they are provably what the model
computes for the job's FASTA (workflows/score_cache.py; every engine: a shard writes its rows, Ray needs no
cluster), else score the FASTA in one process, as one shard of N, or on a Ray cluster (PredictJob.engine /
shard); mark the written files as the product's, then check the submission against the submission rules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.submission import validate_submission
from cafa_mlflow.io.text import write_json
from cafa_mlflow.workflows.predict_batches import batches, predict_fasta, score_frames
from cafa_mlflow.workflows.predict_job import PredictJob
from cafa_mlflow.workflows.score_cache import SavedScores, find_reusable
from cafa_mlflow.workflows.shards import predict_shard, shard_bounds, shard_manifest


@dataclass
class Submitted:
    path: Path  # the submission, or the shard's part file
    lines: int
    proteins: int  # proteins with at least one line
    ray_workers: int | None = None  # actors of the Ray engine, None elsewhere
    reused: bool = False  # written from the scores the chain saved (nothing computed)
    reuse_reason: str = ""  # why it was or was not (one line)


def submit(job: PredictJob) -> Submitted:
    """Run the job's engine, then validate what it wrote; InputError if the writer broke a rule. Shards and Ray
    actors load the pinned model version (the one the alias names now, even if it moves meanwhile)."""
    from cafa_mlflow.serving.model_loader import pinned_uri

    pinned, workers = pinned_uri(job.model_uri), None
    reuse = find_reusable(job, pinned)
    print(f"predict: {'reusing' if reuse.saved else 'computing the scores:'} {reuse.reason}")
    if reuse.saved is not None:
        lines = write_saved(job, reuse.saved, pinned)
    elif job.engine == "ray":
        from cafa_mlflow.workflows.predict_ray import predict_ray

        lines, workers = predict_ray(job, pinned)
    elif job.shard:
        lines = predict_shard(job, pinned).lines
    else:
        lines = predict_fasta(job)
    job.mark_outputs()
    done = Submitted(job.written, lines, 0, workers, reuse.saved is not None, reuse.reason)
    if job.shard and not lines:  # an empty part is valid: its proteins had no score
        return done
    found = validate_submission(job.written, max_terms=job.submission.max_terms)
    if found.counts:
        raise InputError(
            f"{job.written}: the written submission breaks {sum(found.counts.values())} rules, "
            f"e.g. {found[0]}; please report this as a bug."
        )
    done.proteins = found.n_proteins
    return done


def write_saved(job: PredictJob, saved: SavedScores, model_id: str) -> int:
    """The job's submission (a shard: its rows, and its manifest) from the saved scores, through the writer of
    the engines (score_frames, in batches of predict.batch_size), so the bytes are those a computed run writes."""
    mine = saved.records
    if job.shard:
        mine = mine[slice(*shard_bounds(len(mine), *job.shard))]
    frames = batches(mine, None, set(), job.batch_size)
    lines = score_frames(saved, frames, job.written, job.submission, job.evidence_written)
    if job.shard:
        write_json(job.manifest, shard_manifest(job, saved.records, mine, lines, model_id))
    return lines
