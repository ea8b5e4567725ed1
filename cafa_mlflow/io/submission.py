"""CAFA-6 submissions: `ACC<TAB>GO:id<TAB>score`, no header; optional `ACC<TAB>Text<TAB>score<TAB>free text`.

Rules (docs/cafa.md): scores in (0, 1] with at most 3 significant figures, no zeros, at most 1,500 terms
per protein over all aspects, one contiguous block of lines per protein, terms sorted by score, highest
first. Reading streams the file with pyarrow's CSV reader (serial, in blocks), so files of Kaggle's size
(224k proteins x 1,500 terms = 336M lines) are read in bounded memory. This module returns plain arrays
(`Cells`); `cafa_mlflow.go.labels.read_submission` makes a TermMatrix of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.submission_blocks import Ids, NeedsStrings, typed_batches
from cafa_mlflow.io.submission_check import (  # noqa: F401  (the validator, re-exported here)
    BLOCK_BYTES,
    MAX_TERMS,
    SIG_FIGS,
    TEXT,
    Violation,
    iter_blocks,
    line_numbers,
    sig_figs_broken,
    validate_submission,
)
from cafa_mlflow.io.text import atomic_write

DIGITS = 3


def score_strings(digits: int = DIGITS) -> np.ndarray:
    """Text of k / 10**digits for k = 0..10**digits: '0', '0.001', ..., '0.12', ..., '1'."""
    scale = 10**digits
    return np.array([f"{k / scale:.{digits}f}".rstrip("0").rstrip(".") for k in range(scale + 1)], dtype=object)


def write_submission(
    path: str | os.PathLike, tm, max_terms: int = MAX_TERMS, sig: int = DIGITS, block_rows: int = 4096
) -> int:
    """Write scores (`tm`: a cafa_mlflow.go.labels.TermMatrix or anything with proteins, terms and a CSR
    matrix) as a submission; return the number of lines.

    Scores are clipped to [0, 1] and rounded to `sig` decimal places, which for scores in (0, 1] means at
    most `sig` significant figures and no exponent notation; scores that round to 0 are dropped. Each
    protein keeps its `max_terms` best terms, sorted by score, highest first, ties by GO id: the lines do not
    depend on the matrix's column order (a batch's terms), so any batching writes the same bytes.
    Proteins without a score are left out. Works block by block; the file appears only when complete."""
    scale = 10**sig
    table = score_strings(sig)
    proteins = np.asarray(tm.proteins, dtype=object)
    terms = np.asarray(tm.terms, dtype=object)
    term_rank = np.argsort(np.argsort(terms.astype(str), kind="stable"), kind="stable")  # column -> GO id order
    lines = 0
    with atomic_write(path) as out:
        for start in range(0, tm.shape[0], block_rows):
            coo = tm.matrix[start : start + block_rows].tocoo()
            q = np.rint(np.clip(coo.data, 0.0, 1.0) * scale).astype(np.int64)
            keep = q > 0
            rows, cols, q = coo.row[keep], coo.col[keep], q[keep]
            order = np.lexsort((term_rank[cols], -q, rows))
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


@dataclass
class Cells:
    """A submission's (protein row, term column, score) cells as read, repeats included, plus what the
    reader saw of the rules that do not change the metric (to warn about)."""

    proteins: list[str]
    terms: list[str]
    rows: np.ndarray
    cols: np.ndarray
    scores: np.ndarray  # float32
    sig_figs: list = field(default_factory=lambda: [0, None])  # [count, first example] of > SIG_FIGS figures


def read_cells(path: str | os.PathLike, proteins: list[str] | None = None, terms: list[str] | None = None) -> Cells:
    """Read a submission's cells (Text and blank lines ignored).

    Proteins and terms default to the file's, in order of first appearance; given lists keep only
    their ids. Raises InputError naming the line for a line that is not `ACC<TAB>term<TAB>score`, a
    score that is not a number or is outside (0, 1], and for an empty file; run `cafa validate-submission`
    for the full rule check.

    Fast path: pyarrow parses scores as numbers and ids as dictionary codes, which are mapped to rows
    and columns per block. Anything it cannot take (a score that is not a plain number, e.g. a
    header) sends the file to the string reader below, which finds and names the bad line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found; check the path.")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty; expected 'ACC<TAB>GO:id<TAB>score' lines.")
    try:
        return _read_fast(path, proteins, terms)
    except NeedsStrings:
        return _read_strings(path, proteins, terms)


def _read_fast(path: Path, proteins: list[str] | None, terms: list[str] | None) -> Cells:
    row_ids, col_ids = Ids(proteins), Ids(terms)
    fixed = {k: None if v is None else pa.array(list(v), pa.string()) for k, v in (("p", proteins), ("t", terms))}
    parts = []
    sig_figs = [0, None]
    for batch in typed_batches(path, BLOCK_BYTES):
        text = batch.is_text()
        keep = ~text if text.any() else None
        kept = batch.score if keep is None else batch.score[keep]
        if not ((kept > 0) & (kept <= 1)).all():
            raise NeedsStrings  # out of (0, 1] or infinite: the string reader names the line
        n_bad, first = _sig_figs_broken(kept)
        if n_bad:
            i = first if keep is None else int(np.flatnonzero(keep)[first])
            sig_figs[0] += n_bad
            sig_figs[1] = sig_figs[1] or f"{batch.p[i]} {batch.t[i]} {batch.score[i]}"
        if fixed["p"] is not None:  # only the listed proteins: one hash lookup per line, then the rest
            rows = batch.positions("p", fixed["p"])
            keep = (rows >= 0) if keep is None else (keep & (rows >= 0))
            rows, kept = rows[keep], batch.score[keep]
        else:
            rows = row_ids.codes(*batch.encoded("p"), keep)
        if fixed["t"] is not None:
            cols = batch.positions("t", fixed["t"], keep)
        else:
            cols = col_ids.codes(*batch.encoded("t", keep), None)
        vals = kept.astype(np.float32)
        ok = (rows >= 0) & (cols >= 0)
        if not ok.all():
            rows, cols, vals = rows[ok], cols[ok], vals[ok]
        parts.append((rows, cols, vals))
    if not parts:
        raise NeedsStrings  # no prediction line: the string reader says so
    rows, cols, vals = (np.concatenate([part[i] for part in parts]) for i in range(3))
    return Cells(row_ids.names(), col_ids.names(), rows, cols, vals, sig_figs)


def _sig_figs_broken(score: np.ndarray) -> tuple[int, int]:
    """How many scores have more than SIG_FIGS significant figures, and the index of the first."""
    bad = np.flatnonzero(sig_figs_broken(score))
    return len(bad), int(bad[0]) if len(bad) else -1


def _read_strings(path: str | os.PathLike, proteins: list[str] | None, terms: list[str] | None) -> Cells:
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
        values = score.to_numpy(np.float64)
        for bad, what in ((np.isnan(values), "is not a number"), (~((values > 0) & (values <= 1)), "is not in (0, 1]")):
            first = np.flatnonzero(bad)[:1]
            if len(first):
                line = line_numbers(row0 + frame.index.to_numpy()[first], np.array(skipped))[0]
                raise InputError(f"{path}:{line}: score {frame['s'].iloc[first[0]]!r} {what}; fix or remove the line.")
        frames.append(
            pd.DataFrame(
                {
                    "protein": frame["p"].to_numpy(object),
                    "term": frame["t"].to_numpy(object),
                    "score": score.to_numpy(np.float64),
                }
            )
        )
    if not frames or not sum(len(f) for f in frames):
        raise InputError(f"{path}: no prediction lines; expected 'ACC<TAB>GO:id<TAB>score' lines.")
    table = pd.concat(frames, ignore_index=True)
    n_bad, first = _sig_figs_broken(table["score"].to_numpy(np.float64))
    sig_figs = [n_bad, " ".join(map(str, table.iloc[first])) if n_bad else None]
    rows, row_names = _codes(table["protein"], proteins)
    cols, col_names = _codes(table["term"], terms)
    keep = (rows >= 0) & (cols >= 0)
    return Cells(row_names, col_names, rows[keep], cols[keep], table["score"].to_numpy(np.float32)[keep], sig_figs)


def _codes(ids: pd.Series, fixed: list[str] | None) -> tuple[np.ndarray, list[str]]:
    names = list(pd.unique(ids)) if fixed is None else list(fixed)
    return pd.Index(names).get_indexer(ids).astype(np.int32), names
