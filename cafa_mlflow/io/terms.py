"""Readers for annotation tables: Kaggle's `train_terms.tsv` and CAFA ground-truth files."""
from __future__ import annotations

import logging
import os

import pandas as pd

from cafa_mlflow.errors import InputError
from cafa_mlflow.go.ontology import ASPECT_OF_LETTER, Ontology
from cafa_mlflow.io.text import open_text

log = logging.getLogger(__name__)
HEADER = ("EntryID", "term", "aspect")
ASPECT_ALIASES = {**{k: k for k in ASPECT_OF_LETTER}, "BPO": "P", "CCO": "C", "MFO": "F"}


def read_terms(path: str | os.PathLike) -> pd.DataFrame:
    """Read `EntryID<TAB>term[<TAB>aspect]` (header optional) into columns protein, term, aspect.

    aspect is the letter P, C or F, or None when the file has no third column."""
    rows = []
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if line_no == 1 and fields[0] == HEADER[0]:
                continue
            if len(fields) < 2:
                raise InputError(f"{path}:{line_no}: expected 'EntryID<TAB>term<TAB>aspect', got {line.strip()!r}.")
            aspect = None
            if len(fields) > 2:
                aspect = ASPECT_ALIASES.get(fields[2].upper())
                if aspect is None:
                    raise InputError(f"{path}:{line_no}: aspect {fields[2]!r} is not one of C, F, P.")
            if not fields[1].count(":"):
                raise InputError(f"{path}:{line_no}: {fields[1]!r} is not an ontology id like GO:0005515.")
            rows.append((fields[0], fields[1], aspect))
    if not rows:
        raise InputError(f"{path}: no annotations found; expected lines 'EntryID<TAB>term<TAB>aspect'.")
    return pd.DataFrame(rows, columns=["protein", "term", "aspect"])


def resolve_terms(annotations: pd.DataFrame, ontology: Ontology, source: str = "annotations") -> pd.DataFrame:
    """Map alt_ids to primary ids; drop obsolete/unknown terms with one warning (count and examples)."""
    uniq = pd.unique(annotations["term"])
    mapping = {t: ontology.resolve(t) for t in uniq}
    unknown = [t for t, p in mapping.items() if p is None]
    if unknown:
        n_rows = int(annotations["term"].isin(unknown).sum())
        log.warning("%s: %d unknown or obsolete term ids (%d rows) dropped, e.g. %s",
                    source, len(unknown), n_rows, ", ".join(unknown[:5]))
    out = annotations.assign(term=annotations["term"].map(mapping)).dropna(subset=["term"])
    return out.drop_duplicates(["protein", "term"]).reset_index(drop=True)
