"""What the two aligners' searches (data.diamond, data.mmseqs) share: the query records a search reads from a FASTA,
and the hit table read from an aligner's tab-separated output (typed, best bitscore first, one row per pair)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.fasta import read_fasta

NAME_COLUMNS = ("qseqid", "sseqid")  # read as text; every other column as a number


def query_records(fasta: str | os.PathLike, proteins: Sequence[str] | None) -> list[tuple[str, str]]:
    """(id, sequence) of `proteins` (all when None) from `fasta`, in file order; InputError naming missing ids."""
    wanted = None if proteins is None else set(proteins)
    records = [(r.id, r.sequence) for r in read_fasta(fasta) if wanted is None or r.id in wanted]
    if wanted is not None and len(records) < len(wanted):
        missing = sorted(wanted - {r[0] for r in records})
        raise InputError(
            f"{fasta}: {len(missing)} requested proteins have no sequence, e.g. "
            f"{', '.join(missing[:5])}; use the FASTA the ids came from."
        )
    if not records:
        raise InputError(f"{fasta}: no sequences to search or index.")
    return records


def read_hits(path: str | os.PathLike, columns: Sequence[str]) -> pd.DataFrame:
    """An aligner's tab-separated hits (no header, `columns` in order), typed: a search without any hit is an empty
    table of numbers, not of objects."""
    dtype = {c: str if c in NAME_COLUMNS else float for c in columns}
    return pd.read_csv(path, sep="\t", header=None, names=list(columns), dtype=dtype)


def best_first(hits: pd.DataFrame) -> pd.DataFrame:
    """The hits by bitscore, best first (ties in the aligner's order), one row per (query, target): its best."""
    hits = hits.sort_values("bitscore", ascending=False, kind="stable")
    return hits.drop_duplicates(["qseqid", "sseqid"]).reset_index(drop=True)
