"""Homology-aware folds: clusters from hits, whole clusters per fold, no strong hit across folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cafa_mlflow.data.folds import assign_folds, hit_clusters
from cafa_mlflow.errors import ConfigError


def random_hits(n: int, n_hits: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    q, t = rng.integers(0, n, n_hits), rng.integers(0, n, n_hits)
    return pd.DataFrame(
        {
            "qseqid": [f"p{i}" for i in q],
            "sseqid": [f"p{i}" for i in t],
            "pident": rng.uniform(20, 100, n_hits),
            "evalue": 10.0 ** rng.uniform(-60, -1, n_hits),
            "bitscore": rng.uniform(30, 500, n_hits),
        }
    )


def cross_fold_hits(hits: pd.DataFrame, ids: list[str], folds: np.ndarray) -> pd.DataFrame:
    """Hits whose query and target lie in different folds (what a protein's fold may use)."""
    index = pd.Index(ids)
    q, t = index.get_indexer(hits["qseqid"]), index.get_indexer(hits["sseqid"])
    keep = (q >= 0) & (t >= 0)
    keep[keep] = folds[q[keep]] != folds[t[keep]]
    return hits[keep]


def test_clusters_are_components_of_strong_hits():
    hits = pd.DataFrame(
        {
            "qseqid": ["a", "b", "c", "d", "x"],
            "sseqid": ["b", "c", "a", "e", "a"],
            "pident": [80.0, 55.0, 20.0, 49.0, 99.0],
            "evalue": [1e-30, 1e-10, 1e-5, 1e-9, 1e-40],
        }
    )
    groups = hit_clusters(hits, ["a", "b", "c", "d", "e"], min_identity=50)
    assert groups[0] == groups[1] == groups[2]  # a-b (80) and b-c (55); x is not in the pool
    assert len({groups[0], groups[3], groups[4]}) == 3  # d-e at 49% stays apart


def test_no_validation_protein_has_a_training_hit_above_the_threshold():
    ids = [f"p{i}" for i in range(300)]
    hits = random_hits(300, 400)
    folds = assign_folds(hit_clusters(hits, ids, min_identity=70, max_evalue=1e-3), 5, seed=1)
    assert set(folds.tolist()) == set(range(5))
    usable = cross_fold_hits(hits, ids, folds)
    assert len(usable) > 0 and ((usable["pident"] < 70) | (usable["evalue"] > 1e-3)).all()
    random = cross_fold_hits(hits, ids, assign_folds(np.arange(len(ids)), 5, seed=1))
    assert ((random["pident"] >= 70) & (random["evalue"] <= 1e-3)).any()  # the random split does leak here


def test_assign_folds_balances_and_keeps_groups():
    groups = np.array([0, 0, 0, 1, 1, 2, 3, 4, 5, 5])
    folds = assign_folds(groups, 3, seed=0)
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    assert sorted(np.bincount(folds, minlength=3).tolist()) == [3, 3, 4]
    with pytest.raises(ConfigError):
        assign_folds(groups, 1)
