"""CAFA-6 submissions: `ACC<TAB>GO:id<TAB>score`, no header; optional `ACC<TAB>Text<TAB>score<TAB>free text`.

Rules (docs/CAFA.md): scores in (0, 1] with at most 3 significant figures, no zeros, at most 1,500 terms
per protein over all aspects, one contiguous block of lines per protein, terms sorted by score, highest
first. Reading streams the file with pyarrow's CSV reader (serial, in blocks), so files of Kaggle's size
(224k proteins x 1,500 terms = 336M lines) are checked in bounded memory.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.text import atomic_write
from cafa_mlflow.io.submission_check import (  # noqa: F401  (validator and CLI re-exported here)
    MAX_TERMS, TEXT, Violation, add_validate_arguments, iter_blocks, line_numbers, run_validate, validate_submission)
from cafa_mlflow.labels import TermMatrix

DIGITS = 3


def score_strings(digits: int = DIGITS) -> np.ndarray:
    """Text of k / 10**digits for k = 0..10**digits: '0', '0.001', ..., '0.12', ..., '1'."""
    scale = 10**digits
    return np.array([f"{k / scale:.{digits}f}".rstrip("0").rstrip(".") for k in range(scale + 1)], dtype=object)


def write_submission(path: str | os.PathLike, tm: TermMatrix, max_terms: int = MAX_TERMS, sig: int = DIGITS,
                     block_rows: int = 4096) -> int:
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


def read_submission(path: str | os.PathLike, proteins: list[str] | None = None,
                    terms: list[str] | None = None) -> TermMatrix:
    """Read a submission into a TermMatrix (Text lines ignored; repeated pairs keep their max).

    Raises InputError naming the line for a line that is not `ACC<TAB>term<TAB>score` or a score that is
    not a number; run `cafa validate-submission` for the full rule check."""
    frames = []
    skipped: list[int] = []
    for row0, frame, invalid in iter_blocks(path):
        for line, n_fields, text in invalid:
            if not (n_fields >= 3 and text.split("\t")[1] == TEXT):
                raise InputError(f"{path}:{line}: expected 'ACC<TAB>GO:id<TAB>score', got {n_fields} fields: {text[:80]!r}.")
            skipped.append(line)
        frame = frame[(frame["t"] != TEXT) & ((frame["p"] != "") | (frame["t"] != "") | (frame["s"] != ""))]
        score = pd.to_numeric(frame["s"], errors="coerce")
        bad = np.flatnonzero(score.isna().to_numpy())
        if len(bad):
            line = line_numbers(row0 + frame.index.to_numpy()[bad[:1]], np.array(skipped))[0]
            raise InputError(f"{path}:{line}: score {frame['s'].iloc[bad[0]]!r} is not a number; fix or remove the line.")
        frames.append(pd.DataFrame({"protein": frame["p"].to_numpy(object), "term": frame["t"].to_numpy(object),
                                    "score": score.to_numpy(np.float32)}))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"protein": [], "term": [], "score": []})
    return TermMatrix.from_frame(table, proteins=proteins, terms=terms)
