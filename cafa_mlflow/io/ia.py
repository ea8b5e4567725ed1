"""Information-accretion files: `GO:id<TAB>value`, no header."""

from __future__ import annotations

import math
import os

import pandas as pd

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.text import atomic_write, open_text


def read_ia(path: str | os.PathLike) -> dict[str, float]:
    ia: dict[str, float] = {}
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) != 2:
                    raise ValueError
                value = float(fields[1])
                if math.isnan(value) or value < 0:
                    raise ValueError
            except ValueError:
                raise InputError(
                    f"{path}:{line_no}: expected 'GO:id<TAB>non-negative number', got {line.strip()!r}."
                ) from None
            ia[fields[0]] = value
    if not ia:
        raise InputError(f"{path}: no IA values found; expected lines 'GO:id<TAB>value'.")
    return ia


def write_ia(path: str | os.PathLike, ia: dict[str, float] | pd.Series) -> None:
    """Two columns, no header, no trailing blank line (cafaeval's parser needs exactly that)."""
    items = ia.items()
    with atomic_write(path) as out:
        out.write("\n".join(f"{term}\t{value:.10g}" for term, value in items))
