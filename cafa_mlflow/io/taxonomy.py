"""Kaggle's `train_taxonomy.tsv`: `EntryID<TAB>taxonID`, no header."""

from __future__ import annotations

import os

import pandas as pd

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.text import open_text


def read_taxonomy(path: str | os.PathLike) -> pd.Series:
    """Protein id -> taxon id (string), indexed by protein."""
    ids, taxa = [], []
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[1].isdigit():
                raise InputError(f"{path}:{line_no}: expected 'EntryID<TAB>taxonID' (numeric), got {line.strip()!r}.")
            ids.append(fields[0])
            taxa.append(fields[1])
    series = pd.Series(taxa, index=pd.Index(ids, name="protein"), name="taxon")
    dup = series.index[series.index.duplicated()]
    if len(dup):
        raise InputError(f"{path}: protein {dup[0]!r} appears more than once; keep one taxon per protein.")
    return series
