"""Candidate (protein, term) pairs of the stacker and the learned ensemble, and their features: every member's score
(the naive member's: the term's frequency, out-of-fold), then, for the learned ensemble, each search member's hit
statistics of the term (predictors/hit_features.py) and of the protein and the protein's length; the term's IA, depth
and aspect. The stacker (`ensemble.method: stacker`) is the same with no hit statistics.

Candidates: every term a member scores >= `member_floor` for the protein, plus every term whose frequency is
>= `naive_floor` (so proteins without hits still get the frequent terms); `candidate_recall` says how much of a
truth the candidates hold.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from cafa_mlflow.predictors.combine.features import Pairs, TermInfo, candidates, gather
from cafa_mlflow.predictors.hit_features import TERM_FEATURES, HitFeatures

PROTEIN_COLUMNS = ("hits", "top_bits")  # per search member, besides its term features


def pair_features(
    scores: Mapping[str, sp.csr_matrix],
    features: Mapping[str, HitFeatures],
    freq: np.ndarray,
    terms: TermInfo,
    member_floor: float,
    naive_floor: float,
) -> Pairs:
    """Candidates and features of one protein set: `scores` {member: proteins x T}, `features` {search member:
    HitFeatures over the same proteins and T terms, in this order; none for the stacker}; freq/terms: per column of
    T. The protein's length (the longest query length a search member saw) is a column when there are features."""
    n_rows = next(iter(scores.values())).shape[0]
    rows, cols = candidates(scores, freq[None, :], np.zeros(n_rows, np.int64), member_floor, naive_floor)
    names, columns = [], []
    for name, m in scores.items():
        names.append(name)
        columns.append(gather(m, rows, cols))
    length = np.zeros(len(rows), np.float32)
    for name, f in features.items():
        for k in TERM_FEATURES:
            names.append(f"{name}_{k}")
            columns.append(gather(f.term[k], rows, cols))
        for k in PROTEIN_COLUMNS:
            names.append(f"{name}_{k}")
            columns.append(np.asarray(f.protein[k], np.float32)[rows])
        top = columns[-1]
        names.append(f"{name}_rel_bits")  # best bitscore carrying the term / the protein's best hit
        best = columns[names.index(f"{name}_best_bits")]
        columns.append(np.divide(best, top, out=np.zeros(len(rows), np.float32), where=top > 0))
        length = np.maximum(length, np.asarray(f.protein["qlen"], np.float32)[rows])
    # the term's frequency among the fitted proteins is not a column: it is computed from their own labels, so a
    # rare term's frequency would name its few carriers (target leakage); the naive member's out-of-fold prior
    # is the frequency feature
    if features:
        names.append("length")
        columns.append(length)
    names += ["ia", "depth", "aspect"]
    columns += [terms.ia[cols], terms.depth[cols], terms.aspect_code[cols]]
    return Pairs(rows, cols, np.column_stack(columns).astype(np.float32), names)


def candidate_recall(pairs: Pairs, truth: sp.csr_matrix, ia: np.ndarray) -> dict[str, float]:
    """Share of the truth's (protein, term) pairs (columns of the pairs' terms) that are candidates, plain and
    weighted by the term's IA."""
    truth = sp.csr_matrix(truth)
    found = gather(truth, pairs.rows, pairs.cols) > 0
    t_cols = truth.indices[truth.data > 0]
    total, total_ia = float(len(t_cols)), float(ia[t_cols].sum())
    return {
        "candidates": float(len(pairs.rows)),
        "recall": float(found.sum()) / total if total else 0.0,
        "recall_ia": float(ia[pairs.cols[found]].sum()) / total_ia if total_ia else 0.0,
    }
