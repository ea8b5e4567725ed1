"""Label transfer from weighted neighbours (DIAMOND hits, embedding neighbours) over every training term.

score(q, t) = sum_j w_qj y_jt / sum_j w_qj [j annotated in aspect(t)]: with per-aspect normalisation only
neighbours annotated in the term's aspect count in its denominator, so a protein whose hits are mostly
unannotated in MFO still gets full MFO votes. Labels are propagated, so "j annotated in aspect a" is
"j carries a's root"; terms whose root is not among the columns fall back to the all-neighbours total.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.go.labels import max_csr
from cafa_mlflow.predictors.base import term_aspects

GO_ROOTS = {"BPO": "GO:0008150", "CCO": "GO:0005575", "MFO": "GO:0003674"}


def aspect_root_columns(terms: Sequence[str], aspect_of: Any = None) -> np.ndarray:
    """Column of each term's aspect root in `terms` (-1 when unknown or absent).

    aspect_of: Ontology (its single-root aspects) or {term: aspect} (GO's roots); None = all -1 (every
    term normalised by the all-neighbours total)."""
    index = pd.Index(list(terms))
    out = np.full(len(index), -1, dtype=np.int64)
    if aspect_of is None:
        return out
    if hasattr(aspect_of, "roots") and hasattr(aspect_of, "aspects"):
        roots = {a: aspect_of.roots(a) for a in aspect_of.aspects}
        roots = {a: r[0] for a, r in roots.items() if len(r) == 1}
    else:
        roots = GO_ROOTS
    aspects = term_aspects(terms, aspect_of)
    for aspect, root in roots.items():
        col = index.get_indexer([root])[0]
        if col >= 0:
            out[aspects == aspect] = col
    return out


# queries voted at a time: the float64 product and its same-size temporaries are ~8x the float32 output, so a
# whole query set at once is what bounds memory (Kaggle's 224,309 test proteins x 50 hits: 12.8 GB); per block,
# only the float32 output grows with the queries (benchmarks/RESULTS.md, "Full-shape memory per step")
VOTE_BLOCK_ROWS = 8192


def vote(
    weights: sp.spmatrix, labels: sp.spmatrix, root_col: np.ndarray | None = None, block_rows: int = VOTE_BLOCK_ROWS
) -> sp.csr_matrix:
    """Normalised weighted vote: queries x terms float32 CSR from queries x neighbours `weights` (>= 0,
    unnormalised) and neighbours x terms 0/1 `labels`; per-aspect denominators where root_col >= 0.
    Computed `block_rows` queries at a time (every query's row depends on its own weights only)."""
    weights = sp.csr_matrix(weights, dtype=np.float64)
    labels = sp.csr_matrix(labels, dtype=np.float64)
    if weights.shape[0] <= block_rows:
        return _vote_block(weights, labels, root_col)
    starts = range(0, weights.shape[0], block_rows)
    return sp.vstack([_vote_block(weights[s : s + block_rows], labels, root_col) for s in starts], format="csr")


def _vote_block(weights: sp.csr_matrix, labels: sp.csr_matrix, root_col: np.ndarray | None) -> sp.csr_matrix:
    raw = (weights @ labels).tocsr()
    raw.sort_indices()
    rows = np.repeat(np.arange(raw.shape[0]), np.diff(raw.indptr))
    den = np.asarray(weights.sum(axis=1)).ravel()[rows]
    if root_col is not None:
        roots = np.unique(root_col[root_col >= 0])
        if len(roots):
            per_root = raw[:, roots].toarray()  # queries x n_roots
            pos = np.searchsorted(roots, root_col[raw.indices])
            has = root_col[raw.indices] >= 0
            den = np.where(has, per_root[rows, np.minimum(pos, len(roots) - 1)], den)
    out = raw.copy()
    out.data = np.minimum(np.divide(raw.data, den, out=np.zeros_like(raw.data), where=den > 0), 1.0)
    out.eliminate_zeros()
    return out.astype(np.float32)


def hit_matrix(
    hits: pd.DataFrame, query_ids: Sequence[str], target_ids: Sequence[str], column: str = "bitscore"
) -> sp.csr_matrix:
    """queries x targets float64 CSR of one hits column (hits of unknown ids dropped; repeats keep the max)."""
    q = pd.Index(list(query_ids)).get_indexer(hits["qseqid"])
    t = pd.Index(list(target_ids)).get_indexer(hits["sseqid"])
    keep = (q >= 0) & (t >= 0)
    vals = hits[column].to_numpy(np.float32)[keep]
    return max_csr(q[keep], t[keep], vals, (len(query_ids), len(target_ids))).astype(np.float64)


def best_hit_per_term(
    values: sp.csr_matrix, labels: sp.csr_matrix, block_rows: int = 512, min_value: float = 0.0
) -> sp.csr_matrix:
    """queries x terms: the largest `values[q, j]` over neighbours j carrying the term (0 = none).

    Values must be > min_value to count (pass e.g. -log10 e-values or identities); computed per query
    block by expanding each neighbour's label row, so memory ~ block hits x terms per neighbour."""
    values = sp.csr_matrix(values, dtype=np.float32)
    labels = sp.csr_matrix(labels, dtype=bool)
    blocks = []
    for start in range(0, values.shape[0], block_rows):
        block = values[start : start + block_rows].tocoo()
        keep = block.data > min_value
        q, j, v = block.row[keep], block.col[keep], block.data[keep]
        sizes = np.diff(labels.indptr)[j]
        starts = labels.indptr[j]
        flat = np.repeat(starts - np.r_[0, np.cumsum(sizes)[:-1]], sizes) + np.arange(sizes.sum())
        blocks.append(
            max_csr(np.repeat(q, sizes), labels.indices[flat], np.repeat(v, sizes), (block.shape[0], labels.shape[1]))
        )
    if not blocks:
        return sp.csr_matrix((0, labels.shape[1]), dtype=np.float32)
    return sp.vstack(blocks, format="csr")


def hit_evidence(
    hits: pd.DataFrame,
    labels: Any,
    terms: Sequence[str],
    top: int,
    member: str,
    code: Any = None,
) -> dict[str, list[dict]]:
    """Per term, the first `top` of `hits` (one query's, best first) whose target carries it in `labels`
    (a TermMatrix): member, target protein, % identity, e-value, bitscore, and `code(target, term)` as
    "evidence" when given. What `cafa explain` and the served model show for transfer members."""
    found: dict[str, list[dict]] = {t: [] for t in terms}
    rows = pd.Index(labels.proteins).get_indexer(hits["sseqid"])
    hits, rows = hits[rows >= 0], rows[rows >= 0]
    if hits.empty:
        return found
    cols = pd.Index(labels.terms).get_indexer(list(terms))
    carried = labels.matrix[rows][:, np.maximum(cols, 0)].toarray() > 0  # hits x terms
    for k, term in enumerate(terms):
        if cols[k] < 0:
            continue
        for hit in hits[carried[:, k]].head(top).itertuples(index=False):
            row = {
                "member": member,
                "protein": hit.sseqid,
                "identity": float(hit.pident),
                "evalue": float(hit.evalue),
                "bitscore": float(hit.bitscore),
            }
            if code is not None:
                row["evidence"] = code(hit.sseqid, term)
            found[term].append(row)
    return found
