"""`cafa predict`'s work after the model is loaded: score the FASTA in one process, as one shard of N, or on a
Ray cluster (predict.engine), then check the written file against the submission rules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.submission import validate_submission
from cafa_mlflow.workflows.predict_batches import predict_fasta
from cafa_mlflow.workflows.shards import part_path, predict_shard


@dataclass
class Submitted:
    path: Path  # the submission, or the shard's part file
    lines: int
    proteins: int  # proteins with at least one line
    ray_workers: int | None = None  # actors of the Ray engine, None elsewhere


def submit(
    model: Any, model_id: str, fasta: str | Path, out: str | Path, params: Any, shard: tuple[int, int] | None
) -> Submitted:
    """Score `fasta` with the loaded `model` (`model_id`: the pinned URI that shards and Ray actors load) into
    `out` (or its part file for `shard` (i, N)), then validate it; InputError if the writer broke a rule."""
    cfg, workers = params.predict, None
    written = part_path(out, *shard) if shard else Path(out)
    if cfg.engine == "ray":
        from cafa_mlflow.workflows.predict_ray import predict_ray

        lines, workers = predict_ray(model, model_id, fasta, out, params)
    elif shard:
        lines = predict_shard(model, fasta, out, params, *shard, model_id).lines
    else:
        lines = predict_fasta(model, fasta, out, params)
    if shard and not lines:  # an empty part is valid: its proteins had no score
        return Submitted(written, 0, 0, workers)
    found = validate_submission(written, max_terms=params.submission.max_terms)
    if found.counts:
        raise InputError(
            f"{written}: the written submission breaks {sum(found.counts.values())} rules, "
            f"e.g. {found[0]}; please report this as a bug."
        )
    return Submitted(written, lines, found.n_proteins, workers)
