"""Per-protein rescaling of the blend (`ensemble.rescale`): in an aspect where it raises the F-max of the held-out
predictions the weights are fitted on, each protein's scores in that aspect are divided by its highest one there
(the aspect's roots left out, they score 1 for everyone), so a protein whose evidence is weak still ranks its best
terms above the one threshold F-max picks for all proteins. Chosen per aspect on the out-of-fold predictions, like
the weights (benchmarks/RESULTS.md, "Blend with per-protein rescaling").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from cafa_mlflow.go.labels import TermMatrix


def rescale_by_protein_max(
    pred: TermMatrix, term_aspect: Mapping[str, str], rescaled: Mapping[str, Sequence[str]]
) -> TermMatrix:
    """`pred` with each protein's scores in every aspect of `rescaled` ({aspect: its root terms}) divided by the
    protein's highest non-root score in that aspect (capped at 1); other aspects, roots and empty rows unchanged."""
    if not rescaled:
        return pred
    matrix = sp.csr_matrix(pred.matrix, dtype=np.float32, copy=True)
    aspects = np.array([term_aspect.get(t, "") for t in pred.terms], dtype=object)
    roots = np.isin(np.asarray(pred.terms, dtype=object), [r for rs in rescaled.values() for r in rs])
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    for aspect in rescaled:
        in_aspect = ((aspects == aspect) & ~roots)[matrix.indices]  # per stored score
        masked = sp.csr_matrix((np.where(in_aspect, matrix.data, 0), matrix.indices, matrix.indptr), matrix.shape)
        top = masked.max(axis=1).toarray().ravel()
        scale = np.divide(1.0, top, out=np.ones_like(top), where=top > 0)
        matrix.data[in_aspect] = np.minimum(matrix.data[in_aspect] * scale[rows[in_aspect]], 1.0)
    return TermMatrix(pred.proteins, pred.terms, matrix)


def choose_rescaled(
    combined: TermMatrix,
    term_aspect: Mapping[str, str],
    roots: Mapping[str, Sequence[str]],
    score: Callable[[TermMatrix], Mapping],
    transform: Callable[[TermMatrix], TermMatrix] = lambda tm: tm,
    key: str = "f_w",
) -> dict[str, list[str]]:
    """The aspects (with their roots) where rescaling `combined` raises `score(...)[aspect][key]`; each candidate goes
    through `transform` (the submission's rounding) before it is scored: two scorer calls in all."""
    plain = score(transform(combined))
    every = {a: list(r) for a, r in roots.items() if isinstance(plain.get(a), Mapping)}
    rescaled = score(transform(rescale_by_protein_max(combined, term_aspect, every)))
    return {a: r for a, r in every.items() if rescaled[a][key] > plain[a][key]}
