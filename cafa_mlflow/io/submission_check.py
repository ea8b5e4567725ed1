"""Streaming reader and rule checker for CAFA-6 submission files (`cafa validate-submission`).

The file is read by pyarrow's CSV reader in 64 MB blocks (serial, bounded memory); every rule is checked
with vectorized numpy/pandas operations on whole blocks, carrying the last protein's lines over to the
next block so that each protein is checked as one unit. Measured throughput: benchmarks/RESULTS.md
(`## Evaluator at Kaggle scale`: 53M lines in about 20 CPU-seconds on one core here).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cafa_mlflow.io.submission_blocks import (  # noqa: F401  (iter_blocks re-exported)
    BLOCK_BYTES,
    TEXT,
    Names,
    NeedsStrings,
    iter_blocks,
    string_frames,
    typed_frames,
)

MAX_TERMS = 1500
SIG_FIGS = 3
RULES = {
    "columns": "expected 'ACC<TAB>GO:id<TAB>score' (3 tab-separated fields) or 'ACC<TAB>Text<TAB>score<TAB>text'; fix the line",
    "header": "a submission has no header line; delete this line",
    "not_a_number": "the score is not a number; write a decimal number in (0, 1]",
    "score_range": "the score must be in (0, 1]; drop zero scores and cap scores at 1",
    "sig_figs": "the score has more than 3 significant figures; round it (e.g. 0.123)",
    "duplicate": "the term is listed twice for this protein; keep one line (the highest score)",
    "too_many_terms": "the protein has more than {max_terms} terms over all aspects; keep its best {max_terms}",
    "unsorted": "terms are not sorted by score within the protein; sort them, highest score first",
    "not_contiguous": "the protein's lines are split over separate blocks; put all its lines together",
    "unknown_term": "the term is not a live term of the ontology (unknown or obsolete); map or remove it",
}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    protein: str
    term: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] protein {self.protein!r} term {self.term!r}: {self.message}"


class ViolationList(list):
    """Violations found (at most `limit_per_rule` kept per rule) plus full counts and file totals."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()
        self.n_lines = 0  # prediction lines (Text and blank lines excluded)
        self.n_text = 0
        self.n_proteins = 0


def line_numbers(rows: np.ndarray, skipped: np.ndarray) -> np.ndarray:
    """Line numbers (1-based) of valid-row indices `rows`, given the sorted line numbers of invalid rows."""
    rows = np.asarray(rows, dtype=np.int64)
    lines = rows + 1
    while True:
        nxt = rows + 1 + np.searchsorted(skipped, lines, side="right")
        if np.array_equal(nxt, lines):
            return lines
        lines = nxt


def sig_figs_ok(x: np.ndarray, sig: int = SIG_FIGS) -> np.ndarray:
    """True where a positive x has at most `sig` significant figures (as a decimal number)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = 10.0 ** (sig - 1 - np.floor(np.log10(x)))
        rounded = np.round(x * scale) / scale
    return np.abs(rounded - x) <= 1e-9 * x


def sig_figs_broken(x: np.ndarray, sig: int = SIG_FIGS) -> np.ndarray:
    """Mask of the positive scores with more than `sig` significant figures; each distinct value is
    judged once (a submission has few distinct scores), then looked up by hash."""
    values = pa.array(x)
    distinct = pc.unique(values).to_numpy(zero_copy_only=False)
    bad = distinct[~sig_figs_ok(distinct, sig)]
    if not len(bad):
        return np.zeros(len(x), dtype=bool)
    return pc.is_in(values, value_set=pa.array(bad)).to_numpy(zero_copy_only=False)


def validate_submission(
    path: str | os.PathLike,
    ontology=None,
    max_terms: int = MAX_TERMS,
    limit_per_rule: int = 1000,
    block_bytes: int = BLOCK_BYTES,
    typed: bool = True,
) -> ViolationList:
    """Check every rule of a submission file; return the violations (empty = valid).

    First pass: ids as dictionary codes and scores as numbers (fast); a file with a line that is not
    `ACC<TAB>term<TAB>number` (or a Text line) is checked again on string columns, which name such lines."""
    found = ViolationList()
    skipped: list[int] = []
    seen: set[str] = set()
    kept: Counter = Counter()

    def add(rule: str, rows, proteins, terms, lines=None) -> None:
        n = len(rows) if lines is None else len(lines)
        if not n:
            return
        found.counts[rule] += n
        room = min(n, limit_per_rule - kept[rule])
        if room <= 0:
            return
        kept[rule] += room
        lines = (
            line_numbers(np.asarray(rows)[:room], np.asarray(skipped)) if lines is None else np.asarray(lines)[:room]
        )
        msg = RULES[rule].format(max_terms=max_terms)
        found.extend(
            Violation(str(path), int(li), names.protein(pr), names.term(te), rule, msg)
            for li, pr, te in zip(lines, list(proteins)[:room], list(terms)[:room])
        )

    def check(chunk: dict) -> None:
        """Every rule on whole proteins: chunk = arrays row, p, t (ids) and s (float score, NaN = not a number)."""
        rows, p, t, score = chunk["row"], chunk["p"], chunk["t"], chunk["s"]
        # line 1 with a non-numeric score and no ontology id (e.g. 'EntryID term score') is a header
        header = np.isnan(score) & (rows == 0)
        if header.any():
            header &= np.array([":" not in str(x) for x in t], dtype=bool)
        if header.any():  # reported once, then left out of every other rule (it is no protein's line)
            add("header", rows[header], p[header], t[header])
            rows, p, t, score = rows[~header], p[~header], t[~header], score[~header]
        if not len(rows):
            return
        nan = np.isnan(score)
        bad = nan
        add("not_a_number", rows[bad], p[bad], t[bad])
        out = ~nan & ((score <= 0) | (score > 1))
        add("score_range", rows[out], p[out], t[out])
        bad = ~nan & ~out & sig_figs_broken(score)
        add("sig_figs", rows[bad], p[bad], t[bad])
        pcode = p if p.dtype.kind == "i" else pd.factorize(p)[0]  # typed pass: already integer ids
        start = np.ones(len(p), dtype=bool)
        start[1:] = pcode[1:] != pcode[:-1]
        first = np.flatnonzero(start)
        run_p = p[first]
        split = pd.Series(run_p).duplicated().to_numpy() | np.fromiter((x in seen for x in run_p), bool, len(run_p))
        add("not_contiguous", rows[first[split]], run_p[split], t[first[split]])
        seen.update(run_p.tolist())
        tcode, tuniq = (t, None) if t.dtype.kind == "i" else pd.factorize(t)
        width = int(tcode.max(initial=0)) + 1
        keys = pcode.astype(np.int64) * width + tcode
        ordered = np.sort(keys)  # finding whether any pair repeats by sorting is ~10x faster than hashing
        repeats = bool((ordered[1:] == ordered[:-1]).any())
        dup = pd.Series(keys).duplicated().to_numpy() if repeats else np.zeros(len(keys), dtype=bool)
        add("duplicate", rows[dup], p[dup], t[dup])
        length = np.diff(np.append(first, len(p)))
        over = first[length > max_terms] + max_terms
        add("too_many_terms", rows[over], p[over], t[over])
        up = np.zeros(len(p), dtype=bool)
        up[1:] = (score[1:] > score[:-1]) & ~start[1:]
        run_id = np.cumsum(start) - 1
        up_idx = np.flatnonzero(up)
        up_idx = up_idx[pd.Series(run_id[up_idx]).drop_duplicates().index.to_numpy()] if len(up_idx) else up_idx
        add("unsorted", rows[up_idx], p[up_idx], t[up_idx])
        if ontology is not None:
            tuniq = np.unique(t) if tuniq is None else tuniq
            unknown = [x for x in tuniq if ontology.resolve(names.term(x)) is None]
            if unknown:
                bad = np.isin(tcode, np.flatnonzero(pd.Index(tuniq).isin(unknown)))
                add("unknown_term", rows[bad], p[bad], t[bad])
        found.n_lines += len(p)

    names = Names()
    if not typed:
        _run(check, string_frames(path, found, skipped, add, block_bytes))
        found.n_proteins = len(seen)
        found.sort(key=lambda v: v.line)
        return found
    try:
        _run(check, typed_frames(path, found, skipped, names, block_bytes))
    except NeedsStrings:  # a line only the string reader can judge (or name): start again on strings
        return validate_submission(path, ontology, max_terms, limit_per_rule, block_bytes, typed=False)
    found.n_proteins = len(seen)
    found.sort(key=lambda v: v.line)
    return found


def _run(check, chunks) -> None:
    """Feed `check` whole proteins: the last protein of each block is carried over to the next."""
    carry = None
    for chunk in chunks:
        if carry is not None:
            chunk = {k: np.concatenate([carry[k], v]) for k, v in chunk.items()}
        if not len(chunk["p"]):
            continue
        p = chunk["p"]
        changes = np.flatnonzero(p[1:] != p[:-1])
        cut = changes[-1] + 1 if len(changes) else 0
        carry = {k: v[cut:] for k, v in chunk.items()}
        check({k: v[:cut] for k, v in chunk.items()})
    if carry is not None:
        check(carry)
