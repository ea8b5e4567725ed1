"""Score a FASTA with a served model (GoModel pyfunc) into a CAFA-6 submission, batch by batch: the model input
frames, each frame's submission lines (and evidence rows), the parts joined into one file; the one-process
engine of `cafa predict` (`predict_fasta`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.io.fasta import FastaRecord, load_fasta
from cafa_mlflow.io.submission import write_submission
from cafa_mlflow.io.text import atomic_write
from cafa_mlflow.workflows.predict_job import PredictJob, ready_model

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import SubmissionParams


def batches(
    records: list[FastaRecord], vectors: np.ndarray | None, inputs: set[str], size: int
) -> Iterator[pd.DataFrame]:
    """Model input DataFrames of at most `size` proteins."""
    for start in range(0, len(records), size):
        part = records[start : start + size]
        frame = pd.DataFrame({"protein": [r.id for r in part]})
        if "embedding" in inputs:
            frame["embedding"] = list(np.asarray(vectors[start : start + size], dtype=np.float32))
        if "sequence" in inputs:
            frame["sequence"] = [r.sequence for r in part]
        yield frame


def predict_fasta(job: PredictJob) -> int:
    """The one-process engine: score every protein of the job's FASTA into its submission; returns lines.

    Proteins are written in FASTA order (those without a score are left out); each batch is written as a part
    file and the parts are joined into the submission atomically at the end."""
    records = load_fasta(job.fasta)
    ready = ready_model(job, job.model_uri, records, records)
    frames = batches(records, ready.vectors, ready.inputs, job.batch_size)
    return score_frames(ready.model, frames, job.written, job.submission, job.evidence_written)


def score_frames(
    model: Any,
    frames: Iterator[pd.DataFrame],
    out: str | Path,
    sub: SubmissionParams,
    evidence: str | Path | None = None,
) -> int:
    """Score model input frames, in order, into the submission `out` (and the evidence TSV `evidence`, one
    header line); returns lines. Both files appear only when complete."""
    lines = 0
    with tempfile.TemporaryDirectory(prefix="cafa-predict-") as tmp:
        parts, evidence_parts = [], []
        for k, frame in enumerate(frames):
            parts.append(Path(tmp) / f"part_{k:05d}.tsv")
            evidence_parts.append(Path(tmp) / f"evidence_{k:05d}.tsv" if evidence else None)
            lines += score_frame(model, frame, sub, parts[-1], evidence_parts[-1], header=k == 0)
        join_files(parts, out)
        if evidence:
            join_files(evidence_parts, evidence)
    return lines


def score_frame(
    model: Any,
    frame: pd.DataFrame,
    sub: SubmissionParams,
    out: Path,
    evidence: Path | None = None,
    header: bool = True,
) -> int:
    """One model input frame scored into the submission lines `out` (an empty file when no protein scores)
    and, when given, the evidence TSV `evidence` (with a header line when `header`); returns lines."""
    scored = model.predict(frame, params={"evidence": True}) if evidence else model.predict(frame)
    tm = TermMatrix.from_frame(scored[["protein", "term", "score"]], proteins=frame["protein"].tolist())
    lines = write_submission(out, tm, sub.max_terms, sub.sig)
    if evidence:
        scored.to_csv(evidence, sep="\t", index=False, header=header)
    return lines


def join_files(parts: list[Path], out: str | Path) -> None:
    """The part files, in order, as one file written atomically."""
    with atomic_write(out, "wb") as handle:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, handle)
