"""Readers of annotated reference databases into one normalized form: `ReferenceData` = sequences
(id -> sequence) plus an annotation table (protein, term, evidence, taxon).

Formats (params.yaml `reference.databases[].format`):
- `uniprot`: a UniProtKB flat file (`uniprot_sprot.dat[.gz]`): ID/AC/OX lines, `DR   GO; GO:...; C:...; IDA:UniProtKB.`
  lines (evidence code before the colon) and the SQ sequence block; the first AC accession names the protein.
- `gaf`: a GO Annotation File 2.x (GOA's `goa_uniprot_*.gaf[.gz]`) plus a FASTA of its proteins (UniProt or bare
  headers); NOT-qualified rows are skipped.
- `cafa`: a Kaggle/CAFA-style FASTA plus a terms TSV (`EntryID term aspect`, cafa_mlflow/io/terms.py); no evidence
  codes (the database's `evidence` key may declare one, e.g. EXP for Kaggle's experimental train_terms.tsv).
- `metastudent`: Debian's metastudent-data folder (`{MFO,BPO,CCO}/goasp.fasta` BLAST databases read with NCBI
  BLAST+'s `blastdbcmd`, and `goasp_annot.dat`); no evidence codes.

Unknown evidence is the empty string: it passes only the `all` filter (or a database's declared code).
Every malformed line is an InputError naming the file and line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cafa_mlflow.config.schema import DATABASE_FORMATS, EVIDENCE_GROUPS  # the allowed values, checked on entry
from cafa_mlflow.errors import ConfigError, InputError, MissingToolError
from cafa_mlflow.io.fasta import ESM_LETTERS, read_fasta
from cafa_mlflow.io.terms import read_terms
from cafa_mlflow.io.text import open_text

FORMATS = DATABASE_FORMATS
COLUMNS = ("protein", "term", "evidence", "taxon")
METASTUDENT_ASPECTS = ("MFO", "BPO", "CCO")
BLAST_HINT = "install NCBI BLAST+ (`sudo apt-get install ncbi-blast+`) to read the metastudent-data BLAST databases"

ALL_CODES = frozenset(c for codes in EVIDENCE_GROUPS.values() for c in codes)
_GO_ID = re.compile(r"^GO:\d{7}$")


@dataclass
class ReferenceData:
    """Sequences (id -> sequence) and annotations (protein, term, evidence, taxon) of one or more databases."""

    sequences: dict[str, str]
    annotations: pd.DataFrame

    def __post_init__(self) -> None:
        for column in COLUMNS:
            if column not in self.annotations:
                self.annotations[column] = None if column == "taxon" else ""
        self.annotations = self.annotations[list(COLUMNS)].reset_index(drop=True)


def evidence_codes(spec: str | Sequence[str]) -> frozenset[str] | None:
    """The evidence codes a filter keeps: None for `all` (unknown evidence included), else the union of
    the named groups (EVIDENCE_GROUPS) and single codes (IEA, IBA, ...); ConfigError for anything else."""
    items = [spec] if isinstance(spec, str) else list(spec)
    if not items or "all" in items:
        return None
    codes: set[str] = set()
    for item in items:
        if item in EVIDENCE_GROUPS:
            codes.update(EVIDENCE_GROUPS[item])
        elif item.upper() in ALL_CODES:
            codes.add(item.upper())
        else:
            raise ConfigError(
                f"params.yaml reference.evidence={item!r}: use all, a group ({', '.join(EVIDENCE_GROUPS)}) "
                "or GO evidence codes (IEA, IDA, ...)."
            )
    return frozenset(codes)


def filter_evidence(annotations: pd.DataFrame, spec: str | Sequence[str]) -> pd.DataFrame:
    """The rows whose evidence code passes `spec` (see `evidence_codes`)."""
    codes = evidence_codes(spec)
    if codes is None:
        return annotations
    return annotations[annotations["evidence"].isin(codes)].reset_index(drop=True)


def _go_term(path: str | os.PathLike, line_no: int, term: str) -> str:
    if not _GO_ID.match(term):
        raise InputError(f"{path}:{line_no}: {term!r} is not a GO id like GO:0005515.")
    return term


def _sequence_line(path: str | os.PathLike, line_no: int, acc: str, text: str) -> str:
    seq = "".join(text.split()).upper().replace("J", "X")
    bad = set(seq) - ESM_LETTERS
    if bad:
        raise InputError(
            f"{path}:{line_no}: protein {acc!r} has invalid sequence characters {''.join(sorted(bad))!r}; "
            "only amino-acid letters are allowed."
        )
    return seq


def read_uniprot(path: str | os.PathLike) -> ReferenceData:
    """A UniProtKB flat file (plain, .gz or .xz): sequences and `DR GO` annotations with evidence and taxon."""
    sequences: dict[str, str] = {}
    rows: list[tuple[str, str, str, str | None]] = []
    acc = taxon = None
    start, in_seq, chunks, gos = 0, False, [], []
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, 1):
            code = line[:2]
            if code == "ID":
                if acc is not None or start:
                    raise InputError(
                        f"{path}:{line_no}: ID line inside the entry that starts at line {start}; "
                        "each entry ends with a '//' line."
                    )
                start, in_seq, chunks, gos, taxon = line_no, False, [], [], None
            elif not start and line.strip():
                raise InputError(
                    f"{path}:{line_no}: {line.strip()[:40]!r} outside an entry; entries start with an ID line."
                )
            elif in_seq and code == "  ":
                chunks.append(_sequence_line(path, line_no, acc or "?", line))
            elif code == "AC" and acc is None:
                acc = line[5:].split(";")[0].strip()
                if not acc:
                    raise InputError(f"{path}:{line_no}: AC line without an accession.")
            elif code == "OX":
                match = re.search(r"NCBI_TaxID=(\d+)", line)
                if match is None:
                    raise InputError(f"{path}:{line_no}: OX line without NCBI_TaxID=<number>.")
                taxon = match.group(1)
            elif code == "DR" and line[5:8] == "GO;":
                fields = [f.strip() for f in line[5:].rstrip().rstrip(".").split(";")]
                if len(fields) < 4 or ":" not in fields[-1]:
                    raise InputError(
                        f"{path}:{line_no}: expected 'DR   GO; GO:nnnnnnn; X:name; CODE:source.', got {line.strip()!r}."
                    )
                gos.append((_go_term(path, line_no, fields[1]), fields[-1].split(":")[0].strip().upper()))
            elif code == "SQ":
                in_seq = True
            elif line.startswith("//"):
                if acc is None:
                    raise InputError(f"{path}:{line_no}: entry of line {start} has no AC line.")
                if not chunks:
                    raise InputError(f"{path}:{line_no}: entry {acc!r} (line {start}) has no sequence (SQ block).")
                if acc in sequences:
                    raise InputError(f"{path}:{start}: duplicate accession {acc!r}; each entry must appear once.")
                sequences[acc] = "".join(chunks)
                rows.extend((acc, term, evidence, taxon) for term, evidence in gos)
                acc, start, in_seq = None, 0, False
    if start:
        raise InputError(f"{path}:{start}: the last entry has no closing '//' line (truncated file?).")
    if not sequences:
        raise InputError(f"{path}: no UniProtKB entries found; expected ID/AC/DR/SQ lines ending with '//'.")
    return ReferenceData(sequences, pd.DataFrame(rows, columns=list(COLUMNS)))


def read_gaf(path: str | os.PathLike, fasta: str | os.PathLike) -> ReferenceData:
    """A GAF 2.x file plus the FASTA of its proteins (only proteins with a sequence are kept)."""
    rows: list[tuple[str, str, str, str | None]] = []
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, 1):
            if line.startswith("!") or not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 15:
                raise InputError(
                    f"{path}:{line_no}: {len(fields)} tab-separated columns; a GAF 2.x line has 15 to 17 "
                    "(DB, DB Object ID, symbol, qualifier, GO ID, reference, evidence code, ...)."
                )
            if "NOT" in fields[3].split("|"):
                continue
            evidence = fields[6].strip().upper()
            if not evidence:
                raise InputError(f"{path}:{line_no}: empty evidence code (column 7).")
            taxon = fields[12].split("|")[0].removeprefix("taxon:") or None
            rows.append((fields[1].strip(), _go_term(path, line_no, fields[4].strip()), evidence, taxon))
    if not rows:
        raise InputError(f"{path}: no GAF annotation lines found; expected tab-separated GAF 2.x rows.")
    sequences = {r.id: r.sequence for r in read_fasta(fasta)}
    return ReferenceData(sequences, _with_sequences(pd.DataFrame(rows, columns=list(COLUMNS)), sequences, path, fasta))


def read_cafa(fasta: str | os.PathLike, terms: str | os.PathLike, evidence: str = "") -> ReferenceData:
    """A Kaggle/CAFA-style FASTA plus terms TSV; `evidence` is the code given to every row ('' = unknown)."""
    sequences = {r.id: r.sequence for r in read_fasta(fasta)}
    table = read_terms(terms)[["protein", "term"]].assign(evidence=evidence, taxon=None)
    return ReferenceData(sequences, _with_sequences(table, sequences, terms, fasta))


def read_metastudent(folder: str | os.PathLike, blastdbcmd: str = "blastdbcmd") -> ReferenceData:
    """Debian metastudent-data's dataset folder (e.g. /usr/share/metastudent-data/dataset_201401): the union
    of the three aspects' BLAST databases (sequences) and goasp_annot.dat files (terms, no evidence)."""
    folder = Path(folder)
    binary = shutil.which(blastdbcmd)
    if binary is None:
        raise MissingToolError(f"{blastdbcmd!r} not found on PATH; {BLAST_HINT}.")
    sequences: dict[str, str] = {}
    rows: list[tuple[str, str]] = []
    for aspect in METASTUDENT_ASPECTS:
        db, annot = folder / aspect / "goasp.fasta", folder / aspect / "goasp_annot.dat"
        if not annot.is_file() or not Path(f"{db}.psq").is_file():
            raise InputError(
                f"{folder}: no {aspect}/goasp.fasta.psq or {aspect}/goasp_annot.dat; point "
                "reference.databases at metastudent-data's dataset_201401 folder."
            )
        proc = subprocess.run(
            [binary, "-db", str(db), "-entry", "all", "-outfmt", "%t\t%s"], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise InputError(f"{db}: blastdbcmd failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")
        for line in proc.stdout.splitlines():
            acc, _, seq = line.partition("\t")
            sequences.setdefault(acc.split("|")[0], seq)
        with open_text(annot) as handle:
            for line_no, line in enumerate(handle, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) < 2:
                    raise InputError(f"{annot}:{line_no}: expected 'ACCESSION<TAB>GO:...', got {line.strip()!r}.")
                rows.extend((fields[0], _go_term(annot, line_no, t)) for t in fields[1:])
    table = pd.DataFrame(rows, columns=["protein", "term"]).drop_duplicates()
    table = table.assign(evidence="", taxon=None)
    return ReferenceData(sequences, _with_sequences(table, sequences, folder, folder))


def _with_sequences(table: pd.DataFrame, sequences: dict, annotations: object, fasta: object) -> pd.DataFrame:
    """Rows of proteins that have a sequence; InputError when none has one (wrong FASTA for the annotations)."""
    kept = table[table["protein"].isin(sequences.keys())]
    if len(table) and kept.empty:
        raise InputError(
            f"{annotations}: none of its {table['protein'].nunique()} proteins has a sequence in {fasta}; "
            "use the FASTA of the same proteins (ids as in the annotations)."
        )
    return kept


def read_database(spec: dict) -> ReferenceData:
    """One `reference.databases` entry: {format, path[, fasta, terms, evidence]} (see the module doc)."""
    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"params.yaml reference.databases format={fmt!r}: use one of {', '.join(FORMATS)}.")
    needs = {"uniprot": ("path",), "gaf": ("path", "fasta"), "cafa": ("fasta", "terms"), "metastudent": ("path",)}
    for key in needs[fmt]:
        if not spec.get(key):
            raise ConfigError(f"params.yaml reference.databases ({fmt}): needs `{key}`.")
        if not Path(spec[key]).exists():
            raise InputError(f"{spec[key]}: not found (reference.databases {fmt} `{key}`).")
    if fmt == "uniprot":
        data = read_uniprot(spec["path"])
    elif fmt == "gaf":
        data = read_gaf(spec["path"], spec["fasta"])
    elif fmt == "cafa":
        data = read_cafa(spec["fasta"], spec["terms"])
    else:
        data = read_metastudent(spec["path"])
    if spec.get("evidence"):  # a declared code for formats without one (or overriding theirs)
        data.annotations["evidence"] = str(spec["evidence"]).upper()
    return data


def read_databases(specs: Iterable[dict]) -> ReferenceData:
    """The union of several databases: the first sequence of a protein wins, annotations are concatenated."""
    sequences: dict[str, str] = {}
    tables = []
    for spec in specs:
        data = read_database(dict(spec))
        for acc, seq in data.sequences.items():
            sequences.setdefault(acc, seq)
        tables.append(data.annotations)
    if not tables:
        raise ConfigError("params.yaml reference.databases is empty; list at least one database.")
    table = pd.concat(tables, ignore_index=True).drop_duplicates(["protein", "term", "evidence"])
    return ReferenceData(sequences, table)


def database_files(spec: dict) -> list[Path]:
    """The files whose bytes identify a database (for the prepared reference's content hash)."""
    if spec.get("format") == "metastudent":
        root = Path(spec["path"])
        return sorted(p for a in METASTUDENT_ASPECTS for p in (root / a).glob("goasp*") if p.is_file())
    return [Path(spec[k]) for k in ("path", "fasta", "terms") if spec.get(k)]
