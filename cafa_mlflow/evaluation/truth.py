"""The evaluator's inputs besides predictions: the truth file and IA weights, with warnings about them."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.go.annotations import resolve_terms
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.go.ontology import LETTER_OF_ASPECT, Ontology
from cafa_mlflow.io.terms import read_terms

log = logging.getLogger(__name__)


def read_truth(path: str | os.PathLike, ontology: Ontology, proteins: Sequence[str] | None = None) -> TermMatrix:
    """Ground truth from a terms file (Kaggle's `EntryID term aspect` or CAFA's two columns) as a 0/1
    TermMatrix over resolved term ids (alt_ids mapped, obsolete/unknown dropped), unpropagated: the
    evaluator propagates it. `proteins` fixes the rows (default: the file's proteins, in order)."""
    table = resolve_terms(read_terms(path), ontology, source=str(path))
    _warn_aspect_letters(table, ontology, str(path))
    return TermMatrix.from_frame(table, proteins=proteins, value=None)


def _warn_aspect_letters(table: pd.DataFrame, ontology: Ontology, source: str) -> None:
    """Warn when a truth line's aspect letter (P/C/F) contradicts the ontology's namespace of its term."""
    if "aspect" not in table or table["aspect"].isna().all():
        return
    have = table.dropna(subset=["aspect"])
    index = ontology.index
    expected = ontology.aspect[[index[t] for t in have["term"].tolist()]]
    letters = np.array([LETTER_OF_ASPECT.get(a) for a in expected], dtype=object)
    wrong = have[letters != have["aspect"].to_numpy(object)]
    if len(wrong):
        examples = ", ".join(f"{p} {t} {a}" for p, t, a in wrong[["protein", "term", "aspect"]].head(3).to_numpy())
        log.warning(
            "%s: %d lines give an aspect letter that contradicts the ontology's namespace of the term, e.g. %s; "
            "the ontology's namespace is used",
            source,
            len(wrong),
            examples,
        )


def ia_weights(ontology: Ontology, ia: Mapping[str, float] | None) -> np.ndarray:
    """IA per ontology term as cafaeval uses it: missing, zero, negative, NaN or infinite -> 0 (left out)."""
    if ia is None:
        return np.ones(len(ontology))
    values = pd.Series(ia, dtype=np.float64).reindex(ontology.terms).to_numpy()
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    return np.where(values > 0, values, 0.0)


def warn_missing_ia(ontology: Ontology, truth: sp.csr_matrix, ia: Mapping[str, float]) -> None:
    """Warn when terms of the (propagated) truth have no value in the IA file: they weigh 0."""
    scored = np.unique(truth.indices)
    missing = [ontology.terms[j] for j in scored if ontology.terms[j] not in ia]
    if missing:
        log.warning(
            "IA file: %d of the %d terms in the propagated truth have no IA value (weight 0 in the weighted "
            "metrics), e.g. %s; is it the IA file of this ontology?",
            len(missing),
            len(scored),
            ", ".join(missing[:5]),
        )
