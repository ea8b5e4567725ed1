"""Naive (term-frequency) predictor: every protein gets the same scores, the share of training proteins
carrying each (propagated) term.

Denominator (`denominator`):
- "aspect" (default): proteins annotated in the term's aspect, so each aspect's root scores 1. This is
  the CAFA naive baseline: a protein evaluated in an aspect is, by construction, annotated in it.
- "all": all training proteins (terms of a sparsely annotated aspect get lower scores).
Either way the ranking of terms within an aspect is the same; only the scale differs, which moves the
F-max threshold but not much the F-max itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from cafa_mlflow.errors import ConfigError, MissingWeightsError
from cafa_mlflow.go.labels import TermMatrix, load_term_matrix, save_term_matrix
from cafa_mlflow.io.readback import read_json
from cafa_mlflow.io.text import write_json
from cafa_mlflow.predictors.base import Predictor, ProteinSet, TrainSet, as_ids, term_aspects

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import NaiveParams
    from cafa_mlflow.go.ontology import Ontology

DENOMINATORS = ("aspect", "all")


def term_frequencies(
    labels: sp.spmatrix, term_aspect: np.ndarray | None = None, denominator: str = "aspect"
) -> np.ndarray:
    """Share of proteins carrying each term (float64, length T).

    labels: N x T propagated 0/1 (nonzero = carried); term_aspect: aspect per column, needed for
    denominator="aspect"."""
    if denominator not in DENOMINATORS:
        raise ConfigError(f"naive.denominator={denominator!r}: use one of {', '.join(DENOMINATORS)}.")
    carried = sp.csr_matrix(labels, dtype=bool).astype(np.float32).tocsr()
    counts = np.asarray(carried.sum(axis=0), dtype=np.float64).ravel()
    n = carried.shape[0]
    if denominator == "all" or term_aspect is None:
        if denominator == "aspect":
            raise ConfigError("naive.denominator='aspect' needs the aspect of each term (pass an ontology).")
        return counts / n if n else counts
    term_aspect = np.asarray(term_aspect, dtype=object)
    freq = np.zeros_like(counts)
    for aspect in np.unique(term_aspect):
        cols = np.flatnonzero(term_aspect == aspect)
        annotated = int((carried[:, cols].getnnz(axis=1) > 0).sum())
        if annotated:
            freq[cols] = counts[cols] / annotated
    return freq


def repeat_row(row: sp.csr_matrix, n_rows: int) -> sp.csr_matrix:
    """n_rows copies of a 1 x T sparse row, as CSR, without a Python loop."""
    row = sp.csr_matrix(row, dtype=np.float32)
    nnz = row.nnz
    indptr = np.arange(n_rows + 1, dtype=np.int64) * nnz
    return sp.csr_matrix(
        (np.tile(row.data, n_rows), np.tile(row.indices, n_rows), indptr), shape=(n_rows, row.shape[1])
    )


class NaivePredictor(Predictor):
    """Same term-frequency row for every protein; keeps the `top_k` best terms scoring >= `min_score`."""

    kind = "naive"
    label_terms = "vocabulary"  # a frequency prior: rare terms add lines, not score

    @classmethod
    def from_params(cls, block: NaiveParams, ontology: Ontology) -> NaivePredictor:
        return cls(ontology, block.denominator, block.min_score, block.top_k)

    def __init__(
        self, aspect_of: Any = None, denominator: str = "aspect", min_score: float = 0.0, top_k: int = 0
    ) -> None:
        """aspect_of: Ontology or {term: aspect} (required for denominator="aspect"); top_k 0 = no cap."""
        if denominator not in DENOMINATORS:
            raise ConfigError(f"naive.denominator={denominator!r}: use one of {', '.join(DENOMINATORS)}.")
        self.aspect_of, self.denominator = aspect_of, denominator
        self.min_score, self.top_k = float(min_score), int(top_k)
        self.terms: list[str] | None = None
        self.scores: sp.csr_matrix | None = None  # 1 x T

    def fit(self, train: TrainSet) -> NaivePredictor:
        labels = train.labels
        aspects = term_aspects(labels.terms, self.aspect_of) if self.aspect_of is not None else None
        freq = term_frequencies(labels.matrix, aspects, self.denominator)
        cols = np.flatnonzero(freq >= max(self.min_score, np.finfo(np.float32).tiny))
        if self.top_k and len(cols) > self.top_k:
            cols = np.sort(cols[np.argsort(-freq[cols], kind="stable")[: self.top_k]])  # ties: column order
        self.terms = labels.terms
        self.scores = sp.csr_matrix(
            (freq[cols].astype(np.float32), (np.zeros(len(cols), int), cols)), shape=(1, len(labels.terms))
        )
        return self

    def predict(self, proteins: ProteinSet | Sequence[str]) -> TermMatrix:
        self._require_fitted("scores")
        ids = as_ids(proteins)
        return TermMatrix(ids, self.terms, repeat_row(self.scores, len(ids)))

    def frequencies(self) -> TermMatrix:
        """The one fitted row, as a 1 x T TermMatrix (protein id 'naive')."""
        self._require_fitted("scores")
        return TermMatrix(["naive"], self.terms, self.scores)

    def save_files(self, folder: Path) -> None:
        """Write frequencies.npz (the fitted row) and config.json into `folder`."""
        self._require_fitted("scores")
        folder = Path(folder)
        save_term_matrix(folder / "frequencies.npz", self.frequencies())
        config = {"denominator": self.denominator, "min_score": self.min_score, "top_k": self.top_k}
        write_json(folder / "config.json", config)

    @classmethod
    def load_files(cls, folder: Path) -> NaivePredictor:
        """A fitted predictor from a folder written by `save` (no ontology needed to predict)."""
        folder = Path(folder)
        if not (folder / "frequencies.npz").is_file():
            raise MissingWeightsError(f"{folder}: no frequencies.npz; fit and save a naive predictor there first.")
        config = read_json(folder / "config.json")
        self = cls(None, config["denominator"], config["min_score"], config["top_k"])
        row = load_term_matrix(folder / "frequencies.npz")
        self.terms, self.scores = row.terms, row.matrix
        return self
