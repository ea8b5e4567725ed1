"""Readers for annotation tables: Kaggle's `train_terms.tsv` and CAFA ground-truth files."""

from __future__ import annotations

import os

import pandas as pd

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.text import open_text

HEADER = ("EntryID", "term", "aspect")
LETTERS = ("P", "C", "F")  # biological process, cellular component, molecular function
ASPECT_ALIASES = {**{k: k for k in LETTERS}, "BPO": "P", "CCO": "C", "MFO": "F"}


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
