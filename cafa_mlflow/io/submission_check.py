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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import ArrayLike

from cafa_mlflow.io.submission_blocks import (  # noqa: F401  (iter_blocks re-exported)
    BLOCK_BYTES,
    TEXT,
    Names,
    NeedsStrings,
    iter_blocks,
    string_frames,
    typed_frames,
)

if TYPE_CHECKING:
    from cafa_mlflow.go.ontology import Ontology

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
    "no_lines": "the file has no 'ACC<TAB>GO:id<TAB>score' line (`cafa evaluate` refuses it); write tab-separated lines",
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


class Scan:
    """What a validation carries across blocks: the file, the settings, the violations found and kept per rule,
    the line numbers of skipped (Text or malformed) lines, the proteins seen and the names of integer ids."""

    def __init__(self, path: str | os.PathLike, ontology: Ontology | None, max_terms: int, limit_per_rule: int):
        self.path, self.ontology, self.max_terms, self.limit = str(path), ontology, max_terms, limit_per_rule
        self.found = ViolationList()
        self.skipped: list[int] = []
        self.seen: set = set()
        self.kept: Counter = Counter()
        self.names = Names()

    def add(
        self, rule: str, rows: ArrayLike, proteins: ArrayLike, terms: ArrayLike, lines: ArrayLike | None = None
    ) -> None:
        """Count `rule`'s violations at valid-row indices `rows` (or at line numbers `lines`) and keep the
        first ones (at most limit_per_rule per rule)."""
        n = len(rows) if lines is None else len(lines)
        if not n:
            return
        self.found.counts[rule] += n
        room = min(n, self.limit - self.kept[rule])
        if room <= 0:
            return
        self.kept[rule] += room
        if lines is None:
            lines = line_numbers(np.asarray(rows)[:room], np.asarray(self.skipped))
        else:
            lines = np.asarray(lines)[:room]
        msg = RULES[rule].format(max_terms=self.max_terms)
        self.found.extend(
            Violation(self.path, int(li), self.names.protein(pr), self.names.term(te), rule, msg)
            for li, pr, te in zip(lines, list(proteins)[:room], list(terms)[:room])
        )


class Chunk:
    """Whole proteins' lines: arrays row (valid-row index), p, t (ids: integer codes or strings) and s (score,
    NaN = not a number), plus what several checks derive from them."""

    def __init__(self, rows: np.ndarray, p: np.ndarray, t: np.ndarray, score: np.ndarray) -> None:
        self.rows, self.p, self.t, self.score = rows, p, t, score
        self.pcode = p if p.dtype.kind == "i" else pd.factorize(p)[0]  # typed pass: already integer ids
        self.start = np.ones(len(p), dtype=bool)  # first line of each run of one protein
        self.start[1:] = self.pcode[1:] != self.pcode[:-1]
        self.first = np.flatnonzero(self.start)
        self.tcode, self.tuniq = (t, None) if t.dtype.kind == "i" else pd.factorize(t)

    def at(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, proteins, terms) where `mask` (a boolean mask or indices) selects."""
        return self.rows[mask], self.p[mask], self.t[mask]


def drop_header(scan: Scan, rows: np.ndarray, p: np.ndarray, t: np.ndarray, score: np.ndarray) -> Chunk | None:
    """`header`: line 1 with a non-numeric score and no ontology id (e.g. 'EntryID term score') is reported
    once, then left out of every other rule (it is no protein's line). None: nothing is left."""
    header = np.isnan(score) & (rows == 0)
    if header.any():
        header &= np.array([":" not in str(x) for x in t], dtype=bool)
    if header.any():
        scan.add("header", rows[header], p[header], t[header])
        rows, p, t, score = rows[~header], p[~header], t[~header], score[~header]
    return Chunk(rows, p, t, score) if len(rows) else None


def check_scores(scan: Scan, c: Chunk) -> None:
    """`not_a_number`, `score_range` (0, 1] and `sig_figs` (at most SIG_FIGS significant figures)."""
    nan = np.isnan(c.score)
    scan.add("not_a_number", *c.at(nan))
    out = ~nan & ((c.score <= 0) | (c.score > 1))
    scan.add("score_range", *c.at(out))
    scan.add("sig_figs", *c.at(~nan & ~out & sig_figs_broken(c.score)))


def check_contiguous(scan: Scan, c: Chunk) -> None:
    """`not_contiguous`: a protein's lines form one run in the file."""
    run_p = c.p[c.first]
    split = pd.Series(run_p).duplicated().to_numpy() | np.fromiter((x in scan.seen for x in run_p), bool, len(run_p))
    scan.add("not_contiguous", c.rows[c.first[split]], run_p[split], c.t[c.first[split]])
    scan.seen.update(run_p.tolist())


def check_duplicates(scan: Scan, c: Chunk) -> None:
    """`duplicate`: a (protein, term) pair is listed once."""
    width = int(c.tcode.max(initial=0)) + 1
    keys = c.pcode.astype(np.int64) * width + c.tcode
    ordered = np.sort(keys)  # finding whether any pair repeats by sorting is ~10x faster than hashing
    if (ordered[1:] == ordered[:-1]).any():
        scan.add("duplicate", *c.at(pd.Series(keys).duplicated().to_numpy()))


def check_term_count(scan: Scan, c: Chunk) -> None:
    """`too_many_terms`: at most max_terms lines per protein (the first line over the limit is named)."""
    length = np.diff(np.append(c.first, len(c.p)))
    scan.add("too_many_terms", *c.at(c.first[length > scan.max_terms] + scan.max_terms))


def check_sorted(scan: Scan, c: Chunk) -> None:
    """`unsorted`: scores do not increase within a protein (its first increase is named)."""
    up = np.zeros(len(c.p), dtype=bool)
    up[1:] = (c.score[1:] > c.score[:-1]) & ~c.start[1:]
    run_id = np.cumsum(c.start) - 1
    up_idx = np.flatnonzero(up)
    up_idx = up_idx[pd.Series(run_id[up_idx]).drop_duplicates().index.to_numpy()] if len(up_idx) else up_idx
    scan.add("unsorted", *c.at(up_idx))


def check_known_terms(scan: Scan, c: Chunk) -> None:
    """`unknown_term` (with an ontology): every term is a live term of it (alternative ids resolve)."""
    if scan.ontology is None:
        return
    tuniq = np.unique(c.t) if c.tuniq is None else c.tuniq
    unknown = [x for x in tuniq if scan.ontology.resolve(scan.names.term(x)) is None]
    if unknown:
        scan.add("unknown_term", *c.at(np.isin(c.tcode, np.flatnonzero(pd.Index(tuniq).isin(unknown)))))


# the rules checked on whole proteins, in the order their violations are reported (after `header`)
CHECKS = (check_scores, check_contiguous, check_duplicates, check_term_count, check_sorted, check_known_terms)


def check_block(scan: Scan, chunk: dict) -> None:
    """Every rule of CHECKS on whole proteins: chunk = arrays row, p, t (ids) and s (float score)."""
    c = drop_header(scan, chunk["row"], chunk["p"], chunk["t"], chunk["s"])
    if c is None:
        return
    for check in CHECKS:
        check(scan, c)
    scan.found.n_lines += len(c.p)


def validate_submission(
    path: str | os.PathLike,
    ontology: Ontology | None = None,
    max_terms: int = MAX_TERMS,
    limit_per_rule: int = 1000,
    block_bytes: int = BLOCK_BYTES,
    typed: bool = True,
) -> ViolationList:
    """Check every rule of a submission file; return the violations (empty = valid).

    First pass: ids as dictionary codes and scores as numbers (fast); a file with a line that is not
    `ACC<TAB>term<TAB>number` (or a Text line) is checked again on string columns, which name such lines.
    A file without any prediction line is refused as `cafa evaluate` refuses it (rule `no_lines`)."""
    scan = Scan(path, ontology, max_terms, limit_per_rule)
    if not typed:
        _run(
            lambda chunk: check_block(scan, chunk), string_frames(path, scan.found, scan.skipped, scan.add, block_bytes)
        )
    else:
        try:
            frames = typed_frames(path, scan.found, scan.skipped, scan.names, block_bytes)
            _run(lambda chunk: check_block(scan, chunk), frames)
        except NeedsStrings:  # a line only the string reader can judge (or name): start again on strings
            return validate_submission(path, ontology, max_terms, limit_per_rule, block_bytes, typed=False)
    found = scan.found
    if not found.n_lines and not found.counts:
        found.counts["no_lines"] += 1
        found.append(Violation(str(path), 1, "", "", "no_lines", RULES["no_lines"]))
    found.n_proteins = len(scan.seen)
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
