"""Saved predictors by kind: load a member folder, say which inputs it needs, and score proteins.

The serving model and `predict` use this table so that they never special-case a member:
  naive     no input (same scores for everyone)       folder: frequencies.npz, config.json
  knn       pooled embeddings                          folder: train_unit.npy, labels.npz, config.json
  homology  sequences (DIAMOND search)                 folder: train.dmnd, labels.npz, config.json
  neural    pooled embeddings (finetune: sequences)    folder: NeuralPredictor.save (model.pt, config.json)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cafa_mlflow.errors import ConfigError, InputError
from cafa_mlflow.io.fasta import write_fasta
from cafa_mlflow.labels import TermMatrix
from cafa_mlflow.predictors.base import ProteinSet

KINDS = ("naive", "knn", "homology", "neural")
EMBEDDING, SEQUENCE = "embedding", "sequence"


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"unknown predictor kind {kind!r}; use one of {', '.join(KINDS)}.")
    return kind


def load_member(kind: str, folder: str | os.PathLike, threads: int = 0) -> Any:
    """The fitted predictor saved in `folder` (threads: DIAMOND threads for homology, 0 = all cores)."""
    check_kind(kind)
    if kind == "naive":
        from cafa_mlflow.predictors.naive import NaivePredictor

        return NaivePredictor.load(folder)
    if kind == "knn":
        from cafa_mlflow.predictors.knn import KnnPredictor

        return KnnPredictor.load(folder)
    if kind == "homology":
        from cafa_mlflow.predictors.homology import HomologyPredictor

        return HomologyPredictor.load(folder, threads=threads)
    from cafa_mlflow.predictors.neural import NeuralPredictor  # torch only when a neural member is used

    return NeuralPredictor.load(folder)


def member_inputs(kind: str, folder: str | os.PathLike) -> set[str]:
    """Inputs a saved member needs: a subset of {"embedding", "sequence"}."""
    check_kind(kind)
    if kind == "naive":
        return set()
    if kind == "knn":
        return {EMBEDDING}
    if kind == "homology":
        return {SEQUENCE}
    config = json.loads((Path(folder) / "config.json").read_text())
    return {SEQUENCE} if config.get("esm") is not None else {EMBEDDING}


def member_dim(kind: str, folder: str | os.PathLike) -> int | None:
    """Embedding width a saved knn or neural member expects (None: no embedding input)."""
    if EMBEDDING not in member_inputs(kind, folder):
        return None
    config = json.loads((Path(folder) / "config.json").read_text())
    return int(config["dim"] if kind == "knn" else config["in_dim"])


def predict_member(
    kind: str, predictor: Any, ids: Sequence[str], embeddings: Any = None, sequences: Sequence[str] | None = None
) -> TermMatrix:
    """Scores of `ids` (row order kept) from one loaded member, given the inputs it needs."""
    ids = list(ids)
    needs_embedding = kind == "knn" or (kind == "neural" and predictor.in_dim is not None)
    if needs_embedding and embeddings is None:
        raise InputError(f"the {kind} member needs an `embedding` per protein; embed the proteins first.")
    if kind in ("homology", "neural") and not needs_embedding and sequences is None:
        raise InputError(f"the {kind} member needs a `sequence` per protein.")
    if kind == "naive":
        return predictor.predict(ids)
    if kind == "knn":
        return predictor.predict(ProteinSet(ids, embeddings=embeddings))
    if kind == "homology":
        with tempfile.TemporaryDirectory(prefix="cafa-queries-") as tmp:
            fasta = Path(tmp) / "queries.fasta"
            write_fasta(fasta, zip(ids, sequences))
            return predictor.predict(ProteinSet(ids, fasta=fasta))
    x = np.asarray(embeddings, dtype=np.float32) if needs_embedding else list(sequences)
    return TermMatrix(ids, predictor.terms, predictor.predict(x))
