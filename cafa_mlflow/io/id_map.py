"""Id maps: which UniProt accession a query id stands for (CAFA target ids such as T96060000001), so that the
reference's leakage rules find a query's own entry by accession (`reference.id_map`)."""

from __future__ import annotations

import os

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.fasta import UNIPROT_ACCESSION
from cafa_mlflow.io.text import open_text


def read_id_map(path: str | os.PathLike) -> dict[str, str]:
    """{query id: accession} from a file of `ID<whitespace>ACCESSION` lines (plain, .gz or .xz; `#` lines, blank
    lines and an `EntryID`-style header without an accession are skipped). A second column that is not a UniProt
    accession (e.g. CAFA-3's entry names such as 1433B_HUMAN) is an InputError naming the line."""
    mapping: dict[str, str] = {}
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) < 2:
                raise InputError(f"{path}:{line_no}: expected 'ID<TAB>ACCESSION', got {line.strip()!r}.")
            if not UNIPROT_ACCESSION.fullmatch(fields[1]):
                if line_no == 1:
                    continue  # a header line
                raise InputError(
                    f"{path}:{line_no}: {fields[1]!r} is not a UniProt accession; map each id to its accession "
                    "(entry names such as 1433B_HUMAN are not accessions)."
                )
            if mapping.setdefault(fields[0], fields[1]) != fields[1]:
                raise InputError(f"{path}:{line_no}: {fields[0]!r} is mapped twice; give each id one accession.")
    return mapping
