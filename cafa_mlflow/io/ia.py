"""Information-accretion files: `GO:id<TAB>value`, no header."""

from __future__ import annotations

import math
import os

import pandas as pd

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.text import atomic_write, open_text


def read_ia(path: str | os.PathLike) -> dict[str, float]:
    """term -> IA from `GO:id<TAB>value` lines; a well-formed file is parsed by pyarrow, anything else by
    the line-by-line reader, which names the bad line."""
    fast = _read_fast(path)
    return fast if fast is not None else _read_lines(path)


def _read_fast(path: str | os.PathLike) -> dict[str, float] | None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with open_text(path, "rb") as handle:
            table = pacsv.read_csv(
                handle,
                read_options=pacsv.ReadOptions(column_names=["t", "v"], use_threads=False),
                parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
                convert_options=pacsv.ConvertOptions(column_types={"t": pa.string(), "v": pa.float64()}),
            )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    terms = table.column("t").to_pylist()
    values = table.column("v").to_numpy(zero_copy_only=False)
    if not len(terms) or table.column("v").null_count or not (values >= 0).all() or any(" " in t for t in terms):
        return None
    return dict(zip(terms, values.tolist()))


def _read_lines(path: str | os.PathLike) -> dict[str, float]:
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
