"""CAFA-6 submissions: `ACC<TAB>GO:id<TAB>score`, no header; optional `ACC<TAB>Text<TAB>score<TAB>free text`.

Rules (docs/CAFA.md): scores in (0, 1] with at most 3 significant figures, no zeros, at most 1,500 terms
per protein over all aspects, one contiguous block of lines per protein, terms sorted by score, highest
first. Reading streams the file with pyarrow's CSV reader (serial, in blocks), so files of Kaggle's size
(224k proteins x 1,500 terms = 336M lines) are checked in bounded memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.submission_check import (  # noqa: F401  (validator and CLI re-exported here)
    BLOCK_BYTES,
    MAX_TERMS,
    TEXT,
    Violation,
    add_validate_arguments,
    iter_blocks,
    line_numbers,
    run_validate,
    validate_submission,
)
from cafa_mlflow.io.text import atomic_write, open_text
from cafa_mlflow.labels import TermMatrix, max_csr

DIGITS = 3


def score_strings(digits: int = DIGITS) -> np.ndarray:
    """Text of k / 10**digits for k = 0..10**digits: '0', '0.001', ..., '0.12', ..., '1'."""
    scale = 10**digits
    return np.array([f"{k / scale:.{digits}f}".rstrip("0").rstrip(".") for k in range(scale + 1)], dtype=object)


def write_submission(
    path: str | os.PathLike, tm: TermMatrix, max_terms: int = MAX_TERMS, sig: int = DIGITS, block_rows: int = 4096
) -> int:
    """Write scores as a submission; return the number of lines.

    Scores are clipped to [0, 1] and rounded to `sig` decimal places, which for scores in (0, 1] means at
    most `sig` significant figures and no exponent notation; scores that round to 0 are dropped. Each
    protein keeps its `max_terms` best terms (ties: column order), sorted by score, highest first.
    Proteins without a score are left out. Works block by block; the file appears only when complete."""
    scale = 10**sig
    table = score_strings(sig)
    proteins = np.asarray(tm.proteins, dtype=object)
    terms = np.asarray(tm.terms, dtype=object)
    lines = 0
    with atomic_write(path) as out:
        for start in range(0, tm.shape[0], block_rows):
            coo = tm.matrix[start : start + block_rows].tocoo()
            q = np.rint(np.clip(coo.data, 0.0, 1.0) * scale).astype(np.int64)
            keep = q > 0
            rows, cols, q = coo.row[keep], coo.col[keep], q[keep]
            order = np.lexsort((cols, -q, rows))
            rows, cols, q = rows[order], cols[order], q[order]
            run_start = np.searchsorted(rows, rows, side="left")
            keep = np.arange(len(rows)) - run_start < max_terms
            rows, cols, q = rows[keep], cols[keep], q[keep]
            if not len(rows):
                continue
            frame = pd.DataFrame({"p": proteins[rows + start], "t": terms[cols], "s": table[q]})
            frame.to_csv(out, sep="\t", header=False, index=False, lineterminator="\n")
            lines += len(frame)
    return lines


def read_submission(
    path: str | os.PathLike, proteins: list[str] | None = None, terms: list[str] | None = None
) -> TermMatrix:
    """Read a submission into a TermMatrix (Text lines ignored; repeated pairs keep their max).

    Proteins and terms default to the file's, in order of first appearance; given lists keep only
    their ids. Raises InputError naming the line for a line that is not `ACC<TAB>term<TAB>score` or a
    score that is not a number; run `cafa validate-submission` for the full rule check.

    Fast path: pyarrow parses scores as numbers and ids as dictionary codes, which are mapped to rows
    and columns per block. Anything it cannot take (a score that is not a plain number, e.g. a
    header) sends the file to the string reader below, which finds and names the bad line."""
    try:
        return _read_fast(Path(path), proteins, terms)
    except (_NeedsStrings, pa.ArrowInvalid):
        return _read_strings(path, proteins, terms)


class _NeedsStrings(Exception):
    """A block holds a line the fast reader cannot judge (wrong field count, missing or NaN score)."""


class _Ids:
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


def _read_fast(path: Path, proteins: list[str] | None, terms: list[str] | None) -> TermMatrix:
    if not path.is_file():
        raise InputError(f"{path}: file not found; check the path.")
    invalid: list[tuple[int, str]] = []

    def on_invalid(row) -> str:
        invalid.append((row.actual_columns, row.text))
        return "skip"

    code = pa.dictionary(pa.int32(), pa.string())
    row_ids, col_ids = _Ids(proteins), _Ids(terms)
    parts = []
    with open_text(path, "rb") as handle:
        reader = pacsv.open_csv(
            handle,
            read_options=pacsv.ReadOptions(column_names=["p", "t", "s"], block_size=BLOCK_BYTES, use_threads=False),
            parse_options=pacsv.ParseOptions(
                delimiter="\t", quote_char=False, ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={"p": code, "t": code, "s": pa.float64()}, strings_can_be_null=False, null_values=[""]
            ),
        )
        for batch in reader:
            if any(not (n_fields >= 3 and text.split("\t")[1] == TEXT) for n_fields, text in invalid):
                raise _NeedsStrings  # not a Text line: an error, which the string reader names
            invalid.clear()
            p, t = batch.column(0), batch.column(1)
            p_dict, t_dict = p.dictionary.to_numpy(zero_copy_only=False), t.dictionary.to_numpy(zero_copy_only=False)
            p_idx, t_idx = p.indices.to_numpy(), t.indices.to_numpy()
            score = batch.column(2).to_numpy(zero_copy_only=False)
            drop = np.isin(t_idx, np.flatnonzero(t_dict == TEXT))
            nan = np.isnan(score)
            if nan.any():  # blank lines (all fields empty) are skipped; any other missing or NaN score is an error
                missing = ~batch.column(2).is_valid().to_numpy(zero_copy_only=False)
                blank = missing & (p_dict[p_idx] == "") & (t_dict[t_idx] == "")
                if (nan & ~blank & ~drop).any():
                    raise _NeedsStrings
                drop |= blank
            keep = ~drop if drop.any() else None
            rows, cols = row_ids.codes(p_dict, p_idx, keep), col_ids.codes(t_dict, t_idx, keep)
            vals = (score if keep is None else score[keep]).astype(np.float32)
            ok = (rows >= 0) & (cols >= 0)
            if not ok.all():
                rows, cols, vals = rows[ok], cols[ok], vals[ok]
            parts.append((rows, cols, vals))
    parts = parts or [(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))]
    rows, cols, vals = (np.concatenate([part[i] for part in parts]) for i in range(3))
    names, vocab = row_ids.names(), col_ids.names()
    return TermMatrix(names, vocab, max_csr(rows, cols, vals, (len(names), len(vocab))))


def _read_strings(path: str | os.PathLike, proteins: list[str] | None, terms: list[str] | None) -> TermMatrix:
    """Reader on string columns: slower, but sees the text of each field to name a bad line."""
    frames = []
    skipped: list[int] = []
    for row0, frame, invalid in iter_blocks(path):
        for line, n_fields, text in invalid:
            if not (n_fields >= 3 and text.split("\t")[1] == TEXT):
                raise InputError(
                    f"{path}:{line}: expected 'ACC<TAB>GO:id<TAB>score', got {n_fields} fields: {text[:80]!r}."
                )
            skipped.append(line)
        frame = frame[(frame["t"] != TEXT) & ((frame["p"] != "") | (frame["t"] != "") | (frame["s"] != ""))]
        score = pd.to_numeric(frame["s"], errors="coerce")
        bad = np.flatnonzero(score.isna().to_numpy())
        if len(bad):
            line = line_numbers(row0 + frame.index.to_numpy()[bad[:1]], np.array(skipped))[0]
            raise InputError(
                f"{path}:{line}: score {frame['s'].iloc[bad[0]]!r} is not a number; fix or remove the line."
            )
        frames.append(
            pd.DataFrame(
                {
                    "protein": frame["p"].to_numpy(object),
                    "term": frame["t"].to_numpy(object),
                    "score": score.to_numpy(np.float32),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"protein": [], "term": [], "score": []})
    return TermMatrix.from_frame(table, proteins=proteins, terms=terms)
