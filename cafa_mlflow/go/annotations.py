"""Annotation tables against an ontology: alt_ids mapped to primary ids, obsolete/unknown terms dropped."""

from __future__ import annotations

import logging

import pandas as pd

from cafa_mlflow.go.ontology import Ontology

log = logging.getLogger(__name__)


def resolve_terms(annotations: pd.DataFrame, ontology: Ontology, source: str = "annotations") -> pd.DataFrame:
    """Map alt_ids to primary ids; drop obsolete/unknown terms with one warning (count and examples)."""
    uniq = pd.unique(annotations["term"])
    mapping = {t: ontology.resolve(t) for t in uniq}
    unknown = [t for t, p in mapping.items() if p is None]
    if unknown:
        n_rows = int(annotations["term"].isin(unknown).sum())
        log.warning(
            "%s: %d unknown or obsolete term ids (%d rows) dropped, e.g. %s",
            source,
            len(unknown),
            n_rows,
            ", ".join(unknown[:5]),
        )
    out = annotations.assign(term=annotations["term"].map(mapping)).dropna(subset=["term"])
    return out.drop_duplicates(["protein", "term"]).reset_index(drop=True)
