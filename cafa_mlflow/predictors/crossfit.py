"""Out-of-fold (cross-fitted) member predictions over the whole training pool.

Each protein of the pool is scored by a member fitted on the other folds, so a next layer (stacker,
blend weights) learns from ~all of the pool without seeing a member's own fit. Members (`cafa member`,
`cafa train`) go through the generic `cross_fit`: one fresh fit per fold (for homology one small DIAMOND
database per fold, measured faster than one search of the pool against itself:
benchmarks/bench_crossfit_search.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.base import Predictor, TrainSet
from cafa_mlflow.predictors.hit_features import HitFeatures

log = logging.getLogger(__name__)


def oof_sample(n_train: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of the train proteins that get out-of-fold predictions (folds.oof_proteins, folds.seed): a
    seeded sample of `size`, or all when size is 0 or not smaller than n_train."""
    if not 0 < size < n_train:
        return np.arange(n_train)
    return np.sort(np.random.default_rng(seed).choice(n_train, size, replace=False))


def cross_fit(
    make: Callable[[], Predictor],
    train: TrainSet,
    folds: np.ndarray,
    features: list[HitFeatures] | None = None,
    scored: np.ndarray | None = None,
) -> TermMatrix:
    """Out-of-fold predictions of any Predictor: for each fold a fresh `make()` fitted on all the other folds
    predicts the fold's proteins among `scored` (indices into train.ids; None = all); rows follow train.ids order,
    columns the union of the folds' vocabularies (first seen first). `features`: a list that receives each fold
    predictor's term_features() of its fold (those that have some)."""
    folds = np.asarray(folds)
    if len(folds) != len(train.ids):
        raise ValueError(f"{len(folds)} fold labels for {len(train.ids)} proteins")
    wanted = np.zeros(len(folds), bool)
    wanted[np.arange(len(folds)) if scored is None else scored] = True
    order, parts, labels = [], [], np.unique(folds)
    for n, f in enumerate(labels, 1):
        inside, outside = np.flatnonzero((folds == f) & wanted), np.flatnonzero(folds != f)
        log.info("cross-fitting fold %d/%d: fit on %d proteins, predict %d", n, len(labels), len(outside), len(inside))
        fitted = make().fit(train.take(outside))
        if len(inside) < np.sum(folds == f) and (train.sequences is not None or train.fasta is not None):
            whole = train.take(np.flatnonzero(folds == f))  # rules about "the other queries" see the whole fold,
            fitted.set_query_set(whole.ids, whole.read_sequences())  # as without a sample
        parts.append(fitted.predict(train.take(inside)))
        if features is not None and (found := fitted.term_features()) is not None:
            features.append(found)
        order.append(inside)
    terms = list(dict.fromkeys(t for tm in parts for t in tm.terms))
    stacked = sp.vstack([tm.reindex(terms=terms).matrix for tm in parts], format="csr")
    done = np.concatenate(order)
    rows = np.argsort(done, kind="stable")  # back to train.ids order
    return TermMatrix([train.ids[i] for i in done[rows]], terms, stacked[rows])
