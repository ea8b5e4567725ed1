"""Submission-ready scores, shared by the ensemble, the stacker and the served model: GO-consistency (a parent
scores at least its best child), a per-protein term cap and rounding to the submission block's figures."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from cafa_mlflow.errors import ConfigError
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.go.ontology import Ontology

log = logging.getLogger(__name__)


def make_consistent(tm: TermMatrix, ontology: Ontology) -> TermMatrix:
    """GO-consistent scores: every term takes the max of itself and its descendants (adds ancestors).

    Columns become the ontology's terms that carry a score, in ontology order; terms the ontology does
    not know are dropped with a warning."""
    unknown = [t for t in tm.terms if t not in ontology.index]
    if unknown:
        log.warning(
            "%d predicted terms are not in the ontology and are dropped, e.g. %s", len(unknown), ", ".join(unknown[:5])
        )
    full = ontology.propagate_max(tm.reindex(terms=ontology.terms).matrix)
    cols = np.flatnonzero(full.getnnz(axis=0))
    return TermMatrix(tm.proteins, [ontology.terms[c] for c in cols], full[:, cols].tocsr())


def top_k_per_protein(tm: TermMatrix, k: int, tie_break: np.ndarray | None = None) -> TermMatrix:
    """Keep each protein's k highest scores. Ties: lower `tie_break[column]` first, then column order."""
    if k < 1:
        raise ConfigError(f"submission.max_terms={k} must be >= 1.")
    m = tm.matrix.tocsr()
    m.sort_indices()
    counts = np.diff(m.indptr)
    if counts.max(initial=0) <= k:
        return TermMatrix(tm.proteins, tm.terms, m)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    tie = np.zeros(m.shape[1]) if tie_break is None else np.asarray(tie_break, dtype=float)
    order = np.lexsort((m.indices, tie[m.indices], -m.data, rows))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(m.indptr[:-1], counts)
    keep = rank < k
    out = sp.csr_matrix(
        (m.data[keep], m.indices[keep], np.concatenate([[0], np.cumsum(np.minimum(counts, k))])), shape=m.shape
    )
    return TermMatrix(tm.proteins, tm.terms, out)


def round_sig(x: np.ndarray, sig: int) -> np.ndarray:
    """float64 of `x` rounded to `sig` significant figures (non-positive values only to integers)."""
    x = np.asarray(x, dtype=np.float64)
    scale = np.ones_like(x)
    positive = x > 0
    scale[positive] = 10.0 ** (sig - 1 - np.floor(np.log10(x[positive])))
    return np.round(x * scale) / scale


def round_scores(tm: TermMatrix, sig: int, min_score: float) -> TermMatrix:
    """Round to `sig` significant figures, cap at 1, and drop scores below `min_score` (no zeros)."""
    if sig < 1:
        raise ConfigError(f"submission.sig={sig} must be >= 1.")
    m = tm.matrix.tocsr(copy=True)
    rounded = np.minimum(round_sig(m.data, sig), 1.0)
    m.data = np.where(rounded >= min_score, rounded, 0.0).astype(np.float32)
    m.eliminate_zeros()
    return TermMatrix(tm.proteins, tm.terms, m)


def finalize(tm: TermMatrix, ontology: Ontology, submission: Any) -> TermMatrix:
    """Submission-ready scores: GO-consistent, at most `submission.max_terms` per protein, rounded to
    `submission.sig` significant figures, nothing below `submission.min_score` (params.yaml's submission block).

    Ties at the cap keep the term with fewer ancestors first, so a parent is never cut while its equally
    scored child stays, and the result stays consistent."""
    tm = make_consistent(tm, ontology)
    n_ancestors = ontology.ancestors.getnnz(axis=1)[[ontology.index[t] for t in tm.terms]]
    capped = top_k_per_protein(tm, submission.max_terms, n_ancestors)
    return round_scores(capped, submission.sig, submission.min_score)
