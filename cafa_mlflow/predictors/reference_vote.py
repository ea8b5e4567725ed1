"""The reference member's vote and term features over its filtered hits (predictors/reference.py searches and
filters): the bitscore vote of the hits' labels with per-aspect denominators, where a holdout query's hits do not
transfer what `reference.holdout_own_terms` removes of its own entry's terms (predictors/reference_echo.py), and the
hit statistics of what each hit transferred (predictors/hit_features.py)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.data.reference import PreparedReference
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.hit_features import HitFeatures, hit_features
from cafa_mlflow.predictors.homology import hits_to_scores
from cafa_mlflow.predictors.reference_echo import masked_vote, own_entry_rows, own_term_mask


def holdout_mask(
    ref: PreparedReference,
    ids: list[str],
    qhash: np.ndarray,
    accessions: Mapping[str, str],
    held: np.ndarray,
    own_terms: str,
    root_col: np.ndarray,
) -> sp.csr_matrix | None:
    """queries x reference terms: what `own_terms` (holdout_own_terms) keeps each holdout query (`held`) from
    transferring of its own entry's terms; None when nothing is masked (`vote`, or no holdout query)."""
    if own_terms == "vote" or not held.any():
        return None
    rows = own_entry_rows(ids, qhash, ref.labels.proteins, ref.seq_hash, accessions)
    rows[~held] = -1
    direct = ref.annotations() if own_terms == "drop_direct" else None
    return own_term_mask(rows, ref.labels, direct, root_col)


def reference_vote(
    hits: pd.DataFrame,
    ids: list[str],
    ref: PreparedReference,
    mask: sp.csr_matrix | None,
    root_col: np.ndarray,
    index: pd.Index,
) -> TermMatrix:
    """The bitscore vote of `hits` (best first) for `ids`, masked by `mask` (`holdout_mask`); `index`: the
    reference's proteins as an index (built once per loaded reference)."""
    labels = ref.labels
    if mask is not None:
        return masked_vote(hits, ids, labels, mask, root_col)
    targets = list(pd.unique(hits["sseqid"]))
    sub = TermMatrix(targets, labels.terms, labels.matrix[index.get_indexer(targets)])
    return hits_to_scores(hits, ids, sub, False, 0, root_col=root_col)


def reference_term_features(
    hits: pd.DataFrame, ids: list[str], ref: PreparedReference, mask: sp.csr_matrix | None, index: pd.Index
) -> HitFeatures:
    """Hit statistics per (query, term) of the voting `hits`; a hit carries what it transferred in the vote (its
    labels minus the `mask` row of its query)."""
    labels = ref.labels
    q = pd.Index(ids).get_indexer(hits["qseqid"])
    t = index.get_indexer(hits["sseqid"])
    keep = (q >= 0) & (t >= 0)
    hits, q, t = hits[keep], q[keep], t[keep]
    carried = sp.csr_matrix(labels.matrix)[t]
    if mask is not None:
        carried = (carried - carried.multiply(mask[q])).tocsr()
        carried.eliminate_zeros()
    return hit_features(hits, ids, carried, labels.terms)
