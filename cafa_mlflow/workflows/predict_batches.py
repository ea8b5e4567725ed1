"""Score a FASTA with a served model (GoModel pyfunc) into a CAFA-6 submission, batch by batch."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.io.fasta import FastaRecord, load_fasta
from cafa_mlflow.io.submission import write_submission
from cafa_mlflow.io.text import atomic_write


def default_fasta(params: Any) -> str:
    """The prepared test proteins (their embeddings are cached by `embed`), else data.test_fasta."""
    prepared = Path(params.prepare.out) / "test.fasta"
    return str(prepared) if prepared.is_file() else params.data.test_fasta


def embed_records(fasta: str | Path, records: list[FastaRecord], model: Any, embed_block: Any) -> np.ndarray:
    """Pooled vectors of `records` (rows in record order) with the settings the model was fitted on, cached
    under embed.out (the runtime options - device, token budget, shard size - come from params.yaml)."""
    from cafa_mlflow.embed import embed_fasta, load_embeddings
    from cafa_mlflow.embed.resolve import pooled_rows, runtime_options

    settings = model.unwrap_python_model().settings  # the encoder the model carries (or a fair-esm name)
    result = embed_fasta(fasta, settings, embed_block.out, **runtime_options(embed_block))
    return pooled_rows(load_embeddings(result.cache_dir), [r.id for r in records], str(result.cache_dir))


def prepare_model(model: Any, records: list[FastaRecord], threads: int) -> None:
    """Set a loaded GoModel's tool threads and the whole input it will score in batches (its leakage rules
    then see every protein of the FASTA, whatever the batch, shard or Ray actor)."""
    python_model = model.unwrap_python_model()
    python_model.set_threads(threads)
    python_model.set_query_set([r.id for r in records], [r.sequence for r in records])


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


def predict_fasta(model: Any, fasta: str | Path, out: str | Path, params: Any) -> int:
    """Score every protein of `fasta` with a loaded GoModel pyfunc into the submission `out`; returns lines.

    Proteins are written in FASTA order (those without a score are left out); each batch is written as a part
    file and the parts are joined into `out` atomically at the end."""
    from cafa_mlflow.serving.pyfunc import required_inputs

    inputs = required_inputs(model)
    records = load_fasta(fasta)
    prepare_model(model, records, params.predict.threads)
    vectors = embed_records(fasta, records, model, params.embed) if "embedding" in inputs else None
    frames = batches(records, vectors, inputs, max(params.predict.batch_size, 1))
    return score_frames(model, frames, out, params.submission, params.predict.evidence)


def score_frames(
    model: Any, frames: Iterator[pd.DataFrame], out: str | Path, sub: Any, evidence: str | Path | None = None
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
    model: Any, frame: pd.DataFrame, sub: Any, out: Path, evidence: Path | None = None, header: bool = True
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
