"""Decision thresholds chosen on validation scores only: one per aspect, optionally one per term.

Scores are CSR (entries below the prediction min_score are absent, i.e. 0); every grid threshold is > 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.errors import InputError

# metric(y_true CSR, y_pred bool CSR) -> value to maximize, over one aspect's columns
ThresholdMetric = Callable[[sp.csr_matrix, sp.csr_matrix], float]


def threshold_grid(step: float) -> np.ndarray:
    """step, 2*step, ... < 1 (0.01 ... 0.99 for step 0.01), rounded to avoid float drift."""
    return np.round(np.arange(1, int(round(1 / step))) * step, 10)


def _f1_curve(all_scores: np.ndarray, true_scores: np.ndarray, n_true: int, grid: np.ndarray) -> np.ndarray:
    """F1 = 2 TP / (#pred + #true) at every grid threshold (predicted = score >= t)."""
    s, m = np.sort(all_scores), np.sort(true_scores)
    grid = grid.astype(s.dtype)  # compare in the scores' precision: float32 0.35 counts as >= 0.35
    pred = len(s) - np.searchsorted(s, grid, side="left")
    tp = len(m) - np.searchsorted(m, grid, side="left")
    denom = pred + n_true
    return np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)


@dataclass
class Thresholds:
    """aspect: {aspect: t}; per term: threshold, source ('term' | 'aspect'), val support, val F1 at it."""

    aspect: dict[str, float]
    term: np.ndarray
    source: np.ndarray
    support: np.ndarray
    f1: np.ndarray

    def apply(self, scores: sp.csr_matrix) -> sp.csr_matrix:
        """Scores kept only where score >= their term's threshold."""
        scores = scores.tocsr(copy=True)
        scores.data[scores.data < self.term.astype(scores.dtype)[scores.indices]] = 0.0
        scores.eliminate_zeros()
        return scores

    def to_frame(self, terms: Sequence[str], term_aspect: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "term": list(terms),
                "aspect": np.asarray(term_aspect).astype(str),
                "threshold": self.term,
                "source": self.source,
                "val_support": self.support,
                "val_f1": self.f1,
            }
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "aspect": self.aspect,
                "term": self.term.tolist(),
                "source": self.source.tolist(),
                "support": self.support.tolist(),
                "f1": [None if np.isnan(v) else v for v in self.f1.tolist()],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Thresholds:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: dict) -> Thresholds:
        """From the mapping `to_json` writes (io.readback.read_json names the file when a key is missing)."""
        return cls(
            d["aspect"],
            np.asarray(d["term"], dtype=np.float64),
            np.asarray(d["source"], dtype=object),
            np.asarray(d["support"], dtype=np.int64),
            np.asarray([np.nan if v is None else v for v in d["f1"]]),
        )


def choose_aspect_thresholds(
    scores: sp.csr_matrix,
    y: sp.csr_matrix,
    term_aspect: np.ndarray,
    grid: np.ndarray,
    metric: ThresholdMetric | None = None,
) -> dict[str, float]:
    """Per aspect, the grid threshold maximizing `metric` (default micro-F1 over the aspect's cells).
    Ties go to the lowest threshold."""
    if scores.shape != y.shape:
        raise InputError(f"validation scores {scores.shape} and labels {y.shape} differ in shape")
    scores, y = sp.csr_matrix(scores), sp.csr_matrix(y)
    term_aspect = np.asarray(term_aspect).astype(str)
    out = {}
    for aspect in sorted(set(term_aspect.tolist())):
        cols = np.flatnonzero(term_aspect == aspect)
        s, t = scores[:, cols], y[:, cols]
        if metric is None:
            hits = s.multiply(t.astype(bool)).tocsr()
            values = _f1_curve(s.data, hits.data, int(t.nnz), grid)
        else:
            values = np.array([metric(t, (s >= s.dtype.type(thr)).tocsr()) for thr in grid])
        out[aspect] = float(grid[int(np.argmax(values))])
    return out


def choose_thresholds(
    scores: sp.csr_matrix,
    y: sp.csr_matrix,
    term_aspect: np.ndarray,
    step: float,
    per_term: bool,
    min_support: int,
    metric: ThresholdMetric | None = None,
) -> Thresholds:
    """Aspect thresholds, then (if per_term) the F1-best grid threshold of each term with at least
    min_support validation positives; other terms fall back to their aspect's threshold."""
    grid = threshold_grid(step)
    aspect = choose_aspect_thresholds(scores, y, term_aspect, grid, metric)
    term_aspect = np.asarray(term_aspect).astype(str)
    n_terms = y.shape[1]
    term = np.array([aspect[a] for a in term_aspect], dtype=np.float64)
    source = np.full(n_terms, "aspect", dtype=object)
    s, yc = sp.csc_matrix(scores), sp.csc_matrix(y, dtype=bool)
    hits = sp.csc_matrix(s.multiply(yc))
    support = np.diff(yc.indptr).astype(np.int64)
    f1 = np.full(n_terms, np.nan)
    for j in range(n_terms):
        if support[j] == 0:
            continue
        curve = _f1_curve(
            s.data[s.indptr[j] : s.indptr[j + 1]], hits.data[hits.indptr[j] : hits.indptr[j + 1]], int(support[j]), grid
        )
        if per_term and support[j] >= min_support:
            best = int(np.argmax(curve))
            term[j], source[j] = grid[best], "term"
        f1[j] = curve[int(np.argmin(np.abs(grid - term[j])))]
    return Thresholds(aspect, term, source, support, f1)
