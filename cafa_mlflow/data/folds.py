"""Homology-aware K-fold splits of the training pool.

Proteins joined by a DIAMOND hit with identity >= `min_identity` (percent) and e-value <= `max_evalue`
form one cluster (connected components of the hit graph), and whole clusters go to one fold, so a
validation protein never has such a hit among its fold's training part: validation then sees the kind
of novelty the test set has. min_identity None = random folds (only identical sequences are grouped
when `groups` are given). One all-vs-all search of the pool serves both the clusters and cross-fitting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from cafa_mlflow.errors import ConfigError


def hit_clusters(hits: pd.DataFrame, ids: Sequence[str], min_identity: float, max_evalue: float = 1e-3) -> np.ndarray:
    """Cluster label per protein of `ids`: connected components of hits (qseqid, sseqid, pident, evalue)
    with pident >= min_identity and evalue <= max_evalue (self-hits and unknown ids ignored)."""
    index = pd.Index(list(ids))
    strong = hits[(hits["pident"] >= min_identity) & (hits["evalue"] <= max_evalue)]
    q, t = index.get_indexer(strong["qseqid"]), index.get_indexer(strong["sseqid"])
    keep = (q >= 0) & (t >= 0) & (q != t)
    graph = sp.csr_matrix((np.ones(int(keep.sum()), bool), (q[keep], t[keep])), shape=(len(index), len(index)))
    return connected_components(graph, directed=False)[1]


def assign_folds(groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold 0..k-1 per protein, whole groups per fold: groups in a seeded random order, largest first,
    each to the currently smallest fold (balanced fold sizes, random membership)."""
    if k < 2:
        raise ConfigError(f"folds.k={k} must be >= 2.")
    groups = np.asarray(groups)
    labels, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    order = order[np.argsort(-sizes[order], kind="stable")]
    fold_of_group = np.empty(len(labels), dtype=np.int64)
    load = np.zeros(k, dtype=np.int64)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += sizes[g]
    return fold_of_group[inverse]
