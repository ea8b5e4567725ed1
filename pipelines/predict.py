"""`predict --fasta FASTA --out PATH`: the registered champion (or any model URI) scores a FASTA into a
CAFA-6 submission; the FASTA is embedded first (same settings as the model's members) when they need it."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cafa_mlflow import tracking
from cafa_mlflow.errors import InputError
from cafa_mlflow.io.fasta import FastaRecord, load_fasta
from cafa_mlflow.io.submission import validate_submission, write_submission
from cafa_mlflow.io.text import atomic_write
from cafa_mlflow.labels import TermMatrix
from pipelines.common import parse_params, run_main

SECTIONS = ("predict", "embed", "data", "tracking")


def model_uri(params: dict) -> str:
    return params["predict"]["model_uri"] or f"models:/{params['tracking']['registered_model']}@champion"


def embed_records(fasta: str | Path, records: list[FastaRecord], settings: dict, embed_params: dict) -> np.ndarray:
    """Pooled vectors of `records` (rows in record order), computed with the model's embedding settings
    and cached under embed.out."""
    from cafa_mlflow.embed import embed_fasta, load_embeddings
    from pipelines.embed import embed_settings as params_settings

    run_cfg = {**params_settings(embed_params), **settings}  # the model's settings win over params.yaml
    result = embed_fasta(fasta, out_dir=embed_params["out"], **run_cfg)
    emb = load_embeddings(result.cache_dir)
    index = emb.index()
    rows = [index[r.id] for r in records]
    if emb.offsets is None:
        return emb.vectors[np.array(rows, dtype=np.int64)]
    return np.stack([np.asarray(emb.protein(i), np.float32).mean(axis=0) for i in rows])  # ragged: mean of chunks


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


def predict_fasta(
    model: Any, fasta: str | Path, out: str | Path, embed_params: dict, batch_size: int, threads: int = 0
) -> int:
    """Score every protein of `fasta` with a loaded GoModel pyfunc into the submission `out`; returns lines.

    Each batch is written as a part file, and the parts are joined into `out` atomically at the end."""
    from cafa_mlflow.serving import embed_settings, required_inputs

    inputs = required_inputs(model)
    model.unwrap_python_model().set_threads(threads)
    records = load_fasta(fasta)
    vectors = embed_records(fasta, records, embed_settings(model), embed_params) if "embedding" in inputs else None
    lines = 0
    with tempfile.TemporaryDirectory(prefix="cafa-predict-") as tmp:
        parts = []
        for k, frame in enumerate(batches(records, vectors, inputs, max(int(batch_size), 1))):
            table = model.predict(frame)
            tm = TermMatrix.from_frame(table, proteins=frame["protein"].tolist())
            parts.append(Path(tmp) / f"part_{k:05d}.tsv")
            lines += write_submission(parts[-1], tm)
        with atomic_write(out, "wb") as handle:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, handle)
    return lines


def default_fasta(params: dict) -> str:
    """The prepared test proteins (their embeddings are cached by `embed`), else data.test_fasta."""
    prepared = Path(params["prepare"]["out"]) / "test.fasta"
    return str(prepared) if prepared.is_file() else params["data"]["test_fasta"]


def main(argv=None) -> Path:
    params, _ = parse_params(argv, "cafa predict", __doc__, SECTIONS)
    import mlflow

    cfg = params["predict"]
    fasta, out, uri = cfg["fasta"] or default_fasta(params), Path(cfg["out"]), model_uri(params)
    with tracking.start_run(params, "predict", extra_params={**cfg, "fasta": fasta, "model_uri": uri}):
        try:
            model = mlflow.pyfunc.load_model(uri)
        except mlflow.exceptions.MlflowException as err:
            raise InputError(
                f"cannot load model {uri}: {err}; run `cafa ensemble` (or `cafa train`) first, or pass --model-uri."
            ) from err
        lines = predict_fasta(model, fasta, out, params["embed"], cfg["batch_size"], cfg["threads"])
        found = validate_submission(out)
        if found.counts:
            raise InputError(
                f"{out}: the written submission breaks {sum(found.counts.values())} rules, "
                f"e.g. {found[0]}; please report this as a bug."
            )
        tracking.log_metrics({"submission_lines": lines, "submission_proteins": found.n_proteins})
        tracking.log_artifacts([out], "submission")
    print(f"submission: {out} ({found.n_proteins} proteins, {lines} lines) from {uri}")
    return out


if __name__ == "__main__":
    sys.exit(run_main(main))
