"""Streaming FASTA reader for Kaggle's header styles, with validation that names file and line.

Headers: `>sp|ACC|NAME ... OX=9606 ...` (UniProt), `>ACC 9606` (CAFA-6 test superset), `>T96060000001 P12345`
(a CAFA target id and the protein's UniProt accession: `FastaRecord.accession`) and bare `>ACC`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.text import atomic_write, open_text

log = logging.getLogger(__name__)

# ESM-2's amino-acid alphabet (standard 20 plus X, B, U, Z, O); J has no token and becomes X.
ESM_LETTERS = frozenset("ACDEFGHIKLMNPQRSTVWYXBUZO")
REPLACED_LETTERS = {"J": "X"}
_OX = re.compile(r"\bOX=(\d+)")
# UniProtKB accession (https://www.uniprot.org/help/accession_numbers), optionally with an isoform suffix
UNIPROT_ACCESSION = re.compile(r"(?:[OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9](?:[A-Z][A-Z0-9]{2}[0-9]){1,2})(?:-\d+)?")


class FastaRecord(NamedTuple):
    id: str
    sequence: str
    taxon: str | None
    accession: str | None = None  # a UniProt accession the header gives besides the id (`>TARGET ACC`)


def header_accession(header: str) -> str | None:
    """The UniProt accession a CAFA target header gives after its target id (`T96060000001 P12345`), else None
    (`ACC 9606`, `sp|ACC|NAME ...` and bare ids: the id itself is the accession, or none is given)."""
    fields = header.split()
    if len(fields) < 2 or "|" in fields[0] or fields[0] == fields[1]:
        return None
    return fields[1] if UNIPROT_ACCESSION.fullmatch(fields[1]) else None


def parse_header(header: str) -> tuple[str, str | None]:
    """Return (accession, taxon) from a header line without its '>'."""
    fields = header.split()
    if not fields:
        return "", None
    first = fields[0]
    if "|" in first:  # sp|ACC|NAME or tr|ACC|NAME
        parts = first.split("|")
        acc = parts[1] if len(parts) > 1 and parts[1] else first
        match = _OX.search(header)
        return acc, match.group(1) if match else None
    taxon = fields[1] if len(fields) > 1 and fields[1].isdigit() else None
    return first, taxon


def _check_line(path: os.PathLike | str, line_no: int, acc: str, line: str, stopped: bool) -> str:
    """Upper-case one sequence line; only a single '*' closing the record's last line is allowed."""
    line = line.upper()
    if stopped:
        raise InputError(f"{path}:{line_no}: protein {acc!r} continues after a '*' stop; '*' may only end a sequence.")
    bad = set(line) - ESM_LETTERS - set(REPLACED_LETTERS)
    if bad - {"*"} or line.find("*") not in (-1, len(line) - 1):
        shown = "".join(sorted(bad - {"*"})) or "*"
        raise InputError(
            f"{path}:{line_no}: protein {acc!r} contains invalid characters {shown!r}; sequences may hold only "
            "amino-acid letters (digits, gaps, spaces and punctuation are not allowed; '*' only at the end)."
        )
    return line


def _finish(path: os.PathLike | str, line_no: int, acc: str, chunks: list[str], replaced: dict) -> str:
    seq = "".join(chunks).rstrip("*")
    if not seq:
        raise InputError(
            f"{path}:{line_no}: protein {acc!r} has an empty sequence; remove the record or add its sequence."
        )
    for old, new in REPLACED_LETTERS.items():
        if old in seq:
            replaced[old] = replaced.get(old, 0) + seq.count(old)
            seq = seq.replace(old, new)
    return seq


def read_fasta(path: str | os.PathLike) -> Iterator[FastaRecord]:
    """Yield validated records one at a time (plain, .gz or .xz input).

    Errors (InputError) name the file and line: a sequence line before any header, a header without an
    accession, a duplicate id, an empty sequence (line of its header), or invalid characters."""
    seen: set[str] = set()
    replaced: dict[str, int] = {}
    acc, taxon, accession, chunks, start = None, None, None, [], 0
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if acc is not None:
                    yield FastaRecord(acc, _finish(path, start, acc, chunks, replaced), taxon, accession)
                acc, taxon = parse_header(line[1:])
                accession = header_accession(line[1:])
                if not acc:
                    raise InputError(f"{path}:{line_no}: header without an accession; write '>ACCESSION [TAXON]'.")
                if acc in seen:
                    raise InputError(f"{path}:{line_no}: duplicate protein id {acc!r}; each id must appear once.")
                seen.add(acc)
                chunks, start = [], line_no
            elif acc is None:
                raise InputError(
                    f"{path}:{line_no}: sequence line before any '>' header; the file must start with a header."
                )
            else:
                chunks.append(_check_line(path, line_no, acc, line, bool(chunks) and chunks[-1].endswith("*")))
        if acc is not None:
            yield FastaRecord(acc, _finish(path, start, acc, chunks, replaced), taxon, accession)
    for old, count in replaced.items():
        log.warning(
            "%s: replaced %d '%s' residues with '%s' (not in ESM-2's alphabet)", path, count, old, REPLACED_LETTERS[old]
        )


def no_records_error(path: str | os.PathLike) -> InputError:
    """The error for a FASTA file without any record (empty, or text without a '>' header)."""
    return InputError(f"{path}: no FASTA records found; the file is empty or has no '>' header.")


def load_fasta(path: str | os.PathLike) -> list[FastaRecord]:
    """Read the whole file; raise InputError when it holds no record."""
    records = list(read_fasta(path))
    if not records:
        raise no_records_error(path)
    return records


def write_fasta(path: str | os.PathLike, records: Iterable[tuple[str, str]], width: int = 60) -> None:
    """Write (id, sequence) pairs atomically."""
    with atomic_write(path) as out:
        for rec in records:
            out.write(f">{rec[0]}\n")
            seq = rec[1]
            for i in range(0, len(seq), width):
                out.write(seq[i : i + width] + "\n")
