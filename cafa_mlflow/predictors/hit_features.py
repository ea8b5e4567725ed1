"""Per (query, term) statistics of the search hits that carry the term: what a learned ensemble reads of a search
member beyond its vote (`Predictor.term_features`).

For each query and each term carried by at least one of its voting hits: the best % identity, bitscore and
-log10 e-value among those hits, how many carry it and their share of the query's hits, and the query coverage
(% of the query in the alignment) of the best-bitscore hit carrying it. Per query: its number of hits, best
bitscore and length (0 without a hit). A hit carries what it transfers in the member's vote (its propagated
labels, minus what a holdout rule masks for that query).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.go.labels import max_csr
from cafa_mlflow.io.text import atomic_write

TERM_FEATURES = ("best_ident", "best_bits", "best_log_e", "n_hits", "share", "best_cov")
PROTEIN_FEATURES = ("hits", "top_bits", "qlen")
MAX_LOG_E = 300.0  # -log10 of an e-value of 0 (DIAMOND prints 0 below ~1e-300)
BLOCK_QUERIES = 1024  # queries expanded at a time: memory ~ their hits x terms per hit


@dataclass
class HitFeatures:
    """`term`: name -> proteins x terms float32 CSR (0 = no hit carries the term); `protein`: name -> per-protein."""

    proteins: list[str]
    terms: list[str]
    term: dict[str, sp.csr_matrix] = field(default_factory=dict)
    protein: dict[str, np.ndarray] = field(default_factory=dict)

    def reindex(self, proteins: Sequence[str], terms: Sequence[str] | None = None) -> HitFeatures:
        """Rows of `proteins` (absent ones: zeros) and columns of `terms` (default: the same)."""
        rows = pd.Index(self.proteins).get_indexer(list(proteins))
        have = rows >= 0
        cols = np.arange(len(self.terms)) if terms is None else pd.Index(self.terms).get_indexer(list(terms))
        pick_r = sp.csr_matrix((np.ones(have.sum(), np.float32), (np.flatnonzero(have), rows[have])))
        pick_r.resize((len(rows), len(self.proteins)))
        ok = cols >= 0
        pick_c = sp.csr_matrix((np.ones(ok.sum(), np.float32), (cols[ok], np.flatnonzero(ok))))
        pick_c.resize((len(self.terms), len(cols)))
        term = {k: (pick_r @ m @ pick_c).tocsr() for k, m in self.term.items()}
        protein = {k: np.where(have, v[np.maximum(rows, 0)], 0).astype(np.float32) for k, v in self.protein.items()}
        return HitFeatures(list(proteins), list(self.terms if terms is None else terms), term, protein)

    def save(self, path: str | os.PathLike) -> Path:
        """One .npz: ids, terms, each term feature's CSR arrays and each protein feature."""
        arrays = {"proteins": np.array(self.proteins, dtype=object), "terms": np.array(self.terms, dtype=object)}
        for name, m in self.term.items():
            m = sp.csr_matrix(m)
            arrays.update({f"t_{name}_data": m.data, f"t_{name}_indices": m.indices, f"t_{name}_indptr": m.indptr})
        arrays.update({f"p_{name}": v for name, v in self.protein.items()})
        with atomic_write(Path(path), "wb") as handle:
            np.savez_compressed(handle, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> HitFeatures:
        with np.load(path, allow_pickle=True) as z:
            proteins, terms = [str(p) for p in z["proteins"]], [str(t) for t in z["terms"]]
            names = sorted({k[2:].rsplit("_", 1)[0] for k in z.files if k.startswith("t_")})
            shape = (len(proteins), len(terms))
            term = {n: sp.csr_matrix((z[f"t_{n}_data"], z[f"t_{n}_indices"], z[f"t_{n}_indptr"]), shape) for n in names}
            protein = {k[2:]: z[k] for k in z.files if k.startswith("p_")}
        return cls(proteins, terms, term, protein)


def stack_features(parts: Sequence[HitFeatures], proteins: Sequence[str]) -> HitFeatures:
    """Parts over disjoint proteins (cross-fitting folds), joined in `proteins` order over the union of terms."""
    terms = list(dict.fromkeys(t for p in parts for t in p.terms))
    parts = [p.reindex(p.proteins, terms) for p in parts]
    ids = [i for p in parts for i in p.proteins]
    joined = HitFeatures(
        ids,
        terms,
        {k: sp.vstack([p.term[k] for p in parts], format="csr") for k in parts[0].term},
        {k: np.concatenate([p.protein[k] for p in parts]) for k in parts[0].protein},
    )
    return joined.reindex(proteins)


def hit_features(
    hits: pd.DataFrame, query_ids: Sequence[str], pair_labels: sp.csr_matrix, terms: Sequence[str]
) -> HitFeatures:
    """Features of `hits` (qseqid, pident, evalue, bitscore, qcovhsp, qlen; the voting hits, best bitscore first
    per query) whose row i carries the terms of `pair_labels` row i (hits x terms, 0/1)."""
    q = pd.Index(list(query_ids)).get_indexer(hits["qseqid"])
    if (q < 0).any():
        raise ValueError("hits of queries outside query_ids")
    values = {
        "best_ident": hits["pident"].to_numpy(np.float32),
        "best_bits": hits["bitscore"].to_numpy(np.float32),
        "best_log_e": np.minimum(-np.log10(np.maximum(hits["evalue"].to_numpy(np.float64), 1e-300)), MAX_LOG_E),
        "best_cov": hits["qcovhsp"].to_numpy(np.float32),
    }
    n_q, n_t = len(query_ids), len(terms)
    per_query = np.bincount(q, minlength=n_q).astype(np.float32)
    top = np.zeros(n_q, np.float32)
    np.maximum.at(top, q, values["best_bits"])
    qlen = np.zeros(n_q, np.float32)
    np.maximum.at(qlen, q, hits["qlen"].to_numpy(np.float32))
    labels = sp.csr_matrix(pair_labels, dtype=np.float32)
    blocks = [
        _block(q, values, labels, per_query, lo, min(lo + BLOCK_QUERIES, n_q), n_t)
        for lo in range(0, max(n_q, 1), BLOCK_QUERIES)
    ]
    term = {k: sp.vstack([b[k] for b in blocks], format="csr")[:n_q] for k in TERM_FEATURES}
    protein = {"hits": per_query, "top_bits": top, "qlen": qlen}
    return HitFeatures(list(query_ids), list(terms), term, protein)


def _block(
    q: np.ndarray,
    values: dict[str, np.ndarray],
    labels: sp.csr_matrix,
    per_query: np.ndarray,
    lo: int,
    hi: int,
    n_terms: int,
) -> dict[str, sp.csr_matrix]:
    """The features of queries lo..hi-1: every (hit, carried term) entry, reduced per (query, term)."""
    shape = (hi - lo, n_terms)
    pick = np.flatnonzero((q >= lo) & (q < hi))
    sub = labels[pick].tocoo()
    rows, cols = q[pick][sub.row] - lo, sub.col  # sub.row: position within `pick` (hit order kept)
    hit = pick[sub.row]
    out = {name: max_csr(rows, cols, values[name][hit], shape) for name in ("best_ident", "best_bits", "best_log_e")}
    count = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    count.sum_duplicates()
    out["n_hits"] = count
    share = count.copy()
    share.data = share.data / per_query[lo:hi][np.repeat(np.arange(shape[0]), np.diff(share.indptr))]
    out["share"] = share
    keys = rows.astype(np.int64) * n_terms + cols
    order = np.lexsort((-values["best_bits"][hit], keys))  # per cell, best bitscore first
    first = order[np.r_[True, keys[order][1:] != keys[order][:-1]]] if len(order) else order
    cov = np.maximum(values["best_cov"][hit[first]], 1e-3)  # a carried term keeps a non-zero entry
    out["best_cov"] = sp.csr_matrix((cov, (rows[first], cols[first])), shape=shape, dtype=np.float32)
    return out
