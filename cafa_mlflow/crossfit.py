"""Out-of-fold (cross-fitted) member predictions over the whole training pool.

Each protein of the pool is scored by a member fitted on the other folds, so a next layer (stacker,
blend weights) learns from ~all of the pool without seeing a member's own fit. Members (`cafa member`,
`cafa train`) go through the generic `cross_fit`: one fresh fit per fold (for homology one small DIAMOND
database per fold, measured faster than one search of the pool against itself:
benchmarks/bench_crossfit_search.py). The library stacker (stacker/stack.py) instead derives its homology
features and naive rows per fold from one all-vs-all search (`oof_homology_features`, `fold_frequencies`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.folds import cross_fold_hits
from cafa_mlflow.labels import TermMatrix
from cafa_mlflow.predictors.base import Predictor, TrainSet
from cafa_mlflow.predictors.naive import term_frequencies
from cafa_mlflow.transfer import best_hit_per_term, hit_matrix, vote

log = logging.getLogger(__name__)


def fold_frequencies(labels: sp.spmatrix, folds: np.ndarray, term_aspect: np.ndarray) -> np.ndarray:
    """K x T naive rows: term frequencies (aspect denominators) of the proteins outside each fold."""
    labels = sp.csr_matrix(labels)
    return np.stack(
        [term_frequencies(labels[folds != f], term_aspect, "aspect") for f in range(int(folds.max()) + 1)]
    ).astype(np.float32)


def naive_matrix(rows: np.ndarray, which: np.ndarray, floor: float = 0.0) -> sp.csr_matrix:
    """Proteins x T CSR: protein i gets naive row `rows[which[i]]`, entries below `floor` dropped."""
    kept = sp.csr_matrix(np.where(rows >= max(floor, np.finfo(np.float32).tiny), rows, 0.0))
    return kept[np.asarray(which)].tocsr()


def homology_features(
    hits: pd.DataFrame,
    query_ids: Sequence[str],
    labels: TermMatrix,
    root_col: np.ndarray,
    max_target_seqs: int = 0,
) -> dict[str, Any]:
    """Transfer scores and per-(query, term) hit statistics from DIAMOND hits into `labels.proteins`.

    Returns {"score": bitscore vote, "frac": share of hits carrying the term, "best_bits", "best_ident",
    "best_logE": the best bitscore / identity / -log10 e-value among hits carrying the term (CSR,
    queries x terms), "n_hits", "top_bits", "top_ident": per query (arrays)}. Self-hits are dropped;
    max_target_seqs 0 = all hits."""
    hits = hits[hits["qseqid"] != hits["sseqid"]]
    if max_target_seqs:
        hits = hits.sort_values("bitscore", ascending=False, kind="stable")
        hits = hits[hits.groupby("qseqid", sort=False).cumcount() < max_target_seqs]
    hits = hits.assign(logE=-np.log10(hits["evalue"].clip(lower=1e-180)) + 1.0)  # > 0 for e <= 1
    bits = hit_matrix(hits, query_ids, labels.proteins, "bitscore")
    ident = hit_matrix(hits, query_ids, labels.proteins, "pident")
    log_e = hit_matrix(hits, query_ids, labels.proteins, "logE")
    y = labels.matrix
    binary = bits.copy()
    binary.data[:] = 1.0
    return {
        "score": vote(bits, y, root_col),
        "frac": vote(binary, y, root_col),
        "best_bits": best_hit_per_term(bits, y),
        "best_ident": best_hit_per_term(ident, y),
        "best_logE": best_hit_per_term(log_e, y),
        "n_hits": np.diff(bits.indptr).astype(np.float32),
        "top_bits": _row_max(bits),
        "top_ident": _row_max(ident),
    }


def oof_homology_features(
    pool_hits: pd.DataFrame, labels: TermMatrix, folds: np.ndarray, root_col: np.ndarray, max_target_seqs: int = 0
) -> dict[str, Any]:
    """`homology_features` of every pool protein using only hits into other folds (its training part)."""
    usable = cross_fold_hits(pool_hits, labels.proteins, folds)
    return homology_features(usable, labels.proteins, labels, root_col, max_target_seqs)


def cross_fit(make: Callable[[], Predictor], train: TrainSet, folds: np.ndarray) -> TermMatrix:
    """Out-of-fold predictions of any Predictor: for each fold a fresh `make()` fitted on the other folds
    predicts the fold; rows follow `train.ids`, columns the union of the folds' vocabularies (first seen first)."""
    folds = np.asarray(folds)
    if len(folds) != len(train.ids):
        raise ValueError(f"{len(folds)} fold labels for {len(train.ids)} proteins")
    order, parts, labels = [], [], np.unique(folds)
    for n, f in enumerate(labels, 1):
        inside, outside = np.flatnonzero(folds == f), np.flatnonzero(folds != f)
        log.info("cross-fitting fold %d/%d: fit on %d proteins, predict %d", n, len(labels), len(outside), len(inside))
        parts.append(make().fit(train.take(outside)).predict(train.take(inside)))
        order.append(inside)
    terms = list(dict.fromkeys(t for tm in parts for t in tm.terms))
    stacked = sp.vstack([tm.reindex(terms=terms).matrix for tm in parts], format="csr")
    rows = np.empty(len(folds), dtype=np.int64)
    rows[np.concatenate(order)] = np.arange(len(folds))  # back to train.ids order
    return TermMatrix(list(train.ids), terms, stacked[rows])


def _row_max(m: sp.csr_matrix) -> np.ndarray:
    out = np.zeros(m.shape[0], dtype=np.float32)
    nonempty = np.diff(m.indptr) > 0
    out[nonempty] = np.maximum.reduceat(m.data, m.indptr[:-1][nonempty]).astype(np.float32)
    return out
