"""Submission-ready scores, shared by the ensemble, the stacker and the served model: GO-consistency (a parent
scores at least its best child), a per-protein term cap and rounding to the submission block's figures."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from cafa_mlflow.errors import ConfigError
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.go.ontology import Ontology

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import SubmissionParams

log = logging.getLogger(__name__)


# proteins finalized at a time: GO-consistency adds every ancestor and the cap sorts every score, so a whole
# prediction at once holds several copies of its propagated scores (Kaggle's 224,309 test proteins: > 14 GB);
# per block only the capped, rounded result grows with the proteins (benchmarks/RESULTS.md, "Full-shape memory per step")
BLOCK_ROWS = 8192


def make_consistent(tm: TermMatrix, ontology: Ontology) -> TermMatrix:
    """GO-consistent scores: every term takes the max of itself and its descendants (adds ancestors).

    Columns become the ontology's terms that carry a score, in ontology order; terms the ontology does
    not know are dropped with a warning."""
    warn_unknown(tm.terms, ontology)
    full = _propagated(tm, ontology)
    cols = np.flatnonzero(full.getnnz(axis=0))
    return TermMatrix(tm.proteins, [ontology.terms[c] for c in cols], full[:, cols].tocsr())


def warn_unknown(terms: list[str], ontology: Ontology) -> None:
    unknown = [t for t in terms if t not in ontology.index]
    if unknown:
        log.warning(
            "%d predicted terms are not in the ontology and are dropped, e.g. %s", len(unknown), ", ".join(unknown[:5])
        )


def _propagated(tm: TermMatrix, ontology: Ontology) -> sp.csr_matrix:
    """Max-propagated scores over every ontology term (columns = ontology.terms)."""
    return ontology.propagate_max(tm.reindex(terms=ontology.terms).matrix)


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


def finalize(
    tm: TermMatrix, ontology: Ontology, submission: SubmissionParams, block_rows: int = BLOCK_ROWS
) -> TermMatrix:
    """Submission-ready scores: GO-consistent, at most `submission.max_terms` per protein, rounded to
    `submission.sig` significant figures, nothing below `submission.min_score` (params.yaml's submission block).

    Ties at the cap keep the term with fewer ancestors first, so a parent is never cut while its equally
    scored child stays, and the result stays consistent. Computed `block_rows` proteins at a time."""
    starts = range(0, tm.shape[0], block_rows)
    m = tm.matrix
    return finalize_blocks(
        (TermMatrix(tm.proteins[s : s + block_rows], tm.terms, m[s : s + block_rows]) for s in starts),
        ontology,
        submission,
    )


def finalize_blocks(parts: Iterable[TermMatrix], ontology: Ontology, submission: SubmissionParams) -> TermMatrix:
    """`finalize` of one prediction given as blocks of its proteins (`parts`, same terms, made one at a time),
    stacked: equal to finalize of the whole, as every step works per protein except the kept columns (the
    ontology's terms that carry a score after GO-consistency: the union over the blocks)."""
    n_ancestors = ontology.ancestors.getnnz(axis=1)
    proteins, done, present, terms = [], [], np.zeros(len(ontology), dtype=bool), None
    for part in parts:
        if part.terms != terms:
            terms = part.terms
            warn_unknown(terms, ontology)
        full = TermMatrix(part.proteins, ontology.terms, _propagated(part, ontology))
        present |= full.matrix.getnnz(axis=0) > 0
        capped = top_k_per_protein(full, submission.max_terms, n_ancestors)
        done.append(round_scores(capped, submission.sig, submission.min_score).matrix)
        proteins += part.proteins
    if not done:
        return TermMatrix([], [], sp.csr_matrix((0, 0), dtype=np.float32))
    cols = np.flatnonzero(present)
    return TermMatrix(proteins, [ontology.terms[c] for c in cols], _stack(done, np.cumsum(present) - 1))


def _stack(blocks: list[sp.csr_matrix], column: np.ndarray) -> sp.csr_matrix:
    """The row blocks stacked, their columns mapped through `column` (monotone, so rows stay sorted); each
    block is released once copied, so memory holds the result and one block, not two copies of the result."""
    nnz = sum(b.nnz for b in blocks)
    n_cols = int(column[-1]) + 1 if len(column) else 0
    index = np.int32 if max(nnz, n_cols) < np.iinfo(np.int32).max else np.int64
    data, indices = np.empty(nnz, np.float32), np.empty(nnz, index)
    indptr, at, row = np.zeros(sum(b.shape[0] for b in blocks) + 1, index), 0, 0
    while blocks:
        block = blocks.pop(0)
        data[at : at + block.nnz], indices[at : at + block.nnz] = block.data, column[block.indices]
        indptr[row + 1 : row + 1 + block.shape[0]] = block.indptr[1:]
        indptr[row + 1 : row + 1 + block.shape[0]] += at
        at, row = at + block.nnz, row + block.shape[0]
    return sp.csr_matrix((data, indices, indptr), shape=(row, n_cols))
