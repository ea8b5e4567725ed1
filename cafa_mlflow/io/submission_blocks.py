"""Streaming a submission in blocks: typed (ids as dictionary codes, scores as float64) or as strings.

Shared by the reader (`submission.read_cells`) and the validator (`submission_check`): both go through
it first and fall back to string columns (`NeedsStrings`) only for a file holding a line this cannot
judge (wrong field count other than a Text line, blank or missing score, a score that is not a number).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.text import open_text

TEXT = "Text"
BLOCK_BYTES = 64 << 20


class NeedsStrings(Exception):
    """A block holds a line the typed reader cannot judge; read the file on string columns instead."""


@dataclass
class Batch:
    """One block: protein and term columns (pyarrow strings), scores, row index of its first row, and the
    Text lines that pyarrow set aside (line numbers; 4 fields)."""

    p: pa.Array
    t: pa.Array
    score: np.ndarray
    row0: int
    text_lines: list[int]

    def encoded(self, column: str, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(distinct ids in order of first appearance, code of each row) of column "p" or "t", over the
        kept rows only when `keep` is given."""
        values = getattr(self, column)
        if keep is not None:
            values = values.filter(pa.array(keep))
        encoded = pc.dictionary_encode(values)
        return encoded.dictionary.to_numpy(zero_copy_only=False), encoded.indices.to_numpy()

    def positions(self, column: str, ids: pa.Array, keep: np.ndarray | None = None) -> np.ndarray:
        """Position of each (kept) row's id in `ids`, -1 when absent (one hash lookup per row)."""
        values = getattr(self, column)
        if keep is not None:
            values = values.filter(pa.array(keep))
        return pc.fill_null(pc.index_in(values, value_set=ids), -1).to_numpy().astype(np.int32)

    def is_text(self) -> np.ndarray:
        return pc.equal(self.t, TEXT).to_numpy(zero_copy_only=False)


def typed_batches(path: Path, block_bytes: int) -> Iterator[Batch]:
    """Blocks of the file; raises NeedsStrings at the first block the typed reader cannot take."""
    invalid: list[tuple[int, int, str]] = []

    def on_invalid(row) -> str:
        invalid.append((row.number, row.actual_columns, row.text))
        return "skip"

    row0 = 0
    try:
        with open_text(path, "rb") as handle:
            reader = pacsv.open_csv(
                handle,
                read_options=pacsv.ReadOptions(column_names=["p", "t", "s"], block_size=block_bytes, use_threads=False),
                parse_options=pacsv.ParseOptions(
                    delimiter="\t", quote_char=False, ignore_empty_lines=False, invalid_row_handler=on_invalid
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={"p": pa.string(), "t": pa.string(), "s": pa.float64()},
                    strings_can_be_null=False,
                    null_values=[""],
                ),
            )
            for batch in reader:
                if any(not (n >= 3 and text.split("\t")[1] == TEXT) for _, n, text in invalid):
                    raise NeedsStrings
                score = batch.column(2).to_numpy(zero_copy_only=False)
                if np.isnan(score).any():  # blank line, missing or NaN score
                    raise NeedsStrings
                yield Batch(batch.column(0), batch.column(1), score, row0, [line for line, _, _ in invalid])
                row0 += len(score)
                invalid.clear()
        if invalid:  # lines after the last batch (a file of tab-less lines gives no batch at all)
            raise NeedsStrings
    except pa.ArrowInvalid:
        raise NeedsStrings from None


class Ids:
    """Row (column) ids: a fixed list, or first-appearance order of the file's ids."""

    def __init__(self, fixed: list[str] | None) -> None:
        self.fixed = None if fixed is None else pd.Index(list(fixed))
        self.seen: dict[str, int] = {}

    def codes(self, dictionary: np.ndarray, idx: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
        """Id of each kept row given its dictionary code; -1 when a fixed list lacks the id."""
        used = idx if keep is None else idx[keep]
        if self.fixed is not None:
            return self.fixed.get_indexer(dictionary).astype(np.int32)[used]
        if keep is None:  # pyarrow builds the dictionary in order of first appearance
            order = np.flatnonzero(np.bincount(used, minlength=len(dictionary)))
        else:  # some rows left out: order by first kept appearance
            first_codes, first_rows = np.unique(used, return_index=True)
            order = first_codes[np.argsort(first_rows, kind="stable")]
        mapping = np.full(len(dictionary), -1, dtype=np.int32)
        seen = self.seen
        for code in order.tolist():
            mapping[code] = seen.setdefault(dictionary[code], len(seen))
        return mapping[used]

    def names(self) -> list[str]:
        return list(self.fixed) if self.fixed is not None else list(self.seen)


class Names:
    """Names of the integer ids the typed validator works on (identity for the string validator)."""

    def __init__(self) -> None:
        self.proteins = Ids(None)
        self.terms = Ids(None)
        self.typed = False

    def protein(self, x) -> str:
        return self._name(self.proteins, x)

    def term(self, x) -> str:
        return self._name(self.terms, x)

    def _name(self, ids: Ids, x) -> str:
        if not self.typed:
            return str(x)
        if not hasattr(ids, "_list") or len(ids._list) != len(ids.seen):
            ids._list = list(ids.seen)
        return ids._list[int(x)]


def typed_frames(path: Path, found, skipped: list, names: Names, block_bytes: int) -> Iterator[dict]:
    """Blocks as arrays row, p, t (integer ids), s (float score), for the validator."""
    names.typed = True
    for batch in typed_batches(path, block_bytes):
        skipped.extend(batch.text_lines)
        found.n_text += len(batch.text_lines)
        text = batch.is_text()
        keep = ~text if text.any() else None
        found.n_text += int(text.sum())
        rows = np.arange(batch.row0, batch.row0 + len(batch.score))
        yield {
            "row": rows if keep is None else rows[keep],
            "p": names.proteins.codes(*batch.encoded("p"), keep),
            "t": names.terms.codes(*batch.encoded("t"), keep),
            "s": batch.score if keep is None else batch.score[keep],
        }


def iter_blocks(path: str | os.PathLike, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, pd.DataFrame, list]]:
    """Yield (first row index, frame of string columns p/t/s, invalid rows) per block of the file.

    Valid rows have exactly 3 fields; blank lines are rows of empty strings. Invalid rows are taken out
    and listed as (line number, number of fields, text); line numbers start at 1."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found; check the path.")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty; expected 'ACC<TAB>GO:id<TAB>score' lines.")
    invalid: list[tuple[int, int, str]] = []

    def on_invalid(row) -> str:
        invalid.append((row.number, row.actual_columns, row.text))
        return "skip"

    names = ["p", "t", "s"]
    with open_text(path, "rb") as handle:
        reader = pacsv.open_csv(
            handle,
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=block_bytes),
            parse_options=pacsv.ParseOptions(
                delimiter="\t", quote_char=False, ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False
            ),
        )
        row0 = 0
        for batch in reader:
            frame = batch.to_pandas()
            yield row0, frame, invalid[:]
            row0 += len(frame)
            invalid.clear()
        if invalid:  # lines after the last batch (a file of tab-less lines gives no batch at all)
            yield row0, pd.DataFrame({n: pd.Series([], dtype=object) for n in names}), invalid[:]


def string_frames(path, found, skipped: list, add, block_bytes: int):
    """Blocks as arrays row, p, t (strings), s (float); invalid lines reported (or counted as Text) here."""
    for row0, frame, invalid in iter_blocks(path, block_bytes):
        for line, _n_fields, text in invalid:
            skipped.append(line)
            fields = text.split("\t")
            if len(fields) >= 3 and fields[1] == TEXT:
                found.n_text += 1
            elif text.strip():
                rule = (
                    "header"
                    if line == 1
                    and len(fields) > 1
                    and pd.isna(pd.to_numeric(fields[min(2, len(fields) - 1)], errors="coerce"))
                    else "columns"
                )
                add(rule, [], [fields[0]], [fields[1] if len(fields) > 1 else ""], lines=[line])
        frame = frame.assign(row=np.arange(row0, row0 + len(frame)))
        text = frame["t"] == TEXT
        found.n_text += int(text.sum())
        frame = frame[~text & ((frame["p"] != "") | (frame["t"] != "") | (frame["s"] != ""))]
        yield {
            "row": frame["row"].to_numpy(),
            "p": frame["p"].to_numpy(object),
            "t": frame["t"].to_numpy(object),
            "s": pd.to_numeric(frame["s"], errors="coerce").to_numpy(np.float64),
        }
