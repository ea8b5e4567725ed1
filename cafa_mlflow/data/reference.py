"""The prepared reference database: annotated sequences read from UniProt .dat, GAF + FASTA, CAFA-style FASTA +
terms or Debian's metastudent-data (io/reference_formats.py), filtered by evidence, propagated with the product's
GO release and cached by content hash (`<reference.out>/reference-<hash>/`: FASTA and DIAMOND database, a
per-protein sequence hash, the annotation table, the labels, manifest.json), and the leakage rules that drop hits
(`filter_hits`; see predictors/reference.py)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.data.diamond import build_db, diamond_binary
from cafa_mlflow.errors import InputError, MissingWeightsError
from cafa_mlflow.go.labels import TermMatrix, load_term_matrix, save_term_matrix
from cafa_mlflow.io.fasta import write_fasta
from cafa_mlflow.io.integrity import hash_file
from cafa_mlflow.io.reference_formats import (
    FORMATS,
    database_files,
    evidence_codes,
    filter_evidence,
    read_databases,
)
from cafa_mlflow.io.text import atomic_dir, write_json

log = logging.getLogger(__name__)
EXCLUDE = ("queries", "self", "none")
VERSION = 1  # bump when the prepared layout changes
INSTALL = "`make reference` (Debian: apt-get install metastudent-data ncbi-blast+)"
LABELS, PROTEINS, ANNOTATIONS, DB, MANIFEST = (
    "labels.npz",
    "proteins.parquet",
    "annotations.parquet",
    "reference.dmnd",
    "manifest.json",
)


def sequence_hash(sequences: list[str]) -> np.ndarray:
    """int64 hash of each sequence (blake2b, 8 bytes): identical sequences have equal hashes."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little", signed=True) for s in sequences],
        dtype=np.int64,
    )


def reference_key(databases: list[dict], evidence: Any, obo: str | os.PathLike) -> str:
    """Content hash of the databases' files, their specs, the evidence filter and the OBO file."""
    h = hashlib.sha256(f"v{VERSION}\0".encode())
    for spec in databases:
        h.update(
            json.dumps({k: v for k, v in spec.items() if k not in ("path", "fasta", "terms")}, sort_keys=True).encode()
        )
        for path in database_files(spec):
            if not path.exists():
                raise InputError(f"{path}: reference database file not found; get it with {INSTALL} or fix the path.")
            hash_file(h, path)
    h.update(json.dumps(sorted(evidence) if not isinstance(evidence, str) else evidence).encode())
    hash_file(h, obo)
    return h.hexdigest()


def unavailable(block: Any) -> str | None:
    """Why the reference block cannot be used now (None: it can): disabled, or files or tools missing."""
    for spec in block.databases:
        if spec.get("format") not in FORMATS:
            return f"reference.databases format {spec.get('format')!r} is not one of {', '.join(FORMATS)}"
        for key in ("path", "fasta", "terms"):
            if spec.get(key) and not Path(spec[key]).exists():
                return f"{spec[key]} not found (install it with {INSTALL})"
        if spec["format"] == "metastudent" and shutil.which("blastdbcmd") is None:
            return f"blastdbcmd not found (install it with {INSTALL})"
    if not block.databases:
        return "reference.databases is empty"
    if shutil.which(block.executable) is None:
        return f"DIAMOND ({block.executable}) not found"
    return None


@dataclass
class PreparedReference:
    """A prepared reference folder: DIAMOND database, propagated labels, sequence hashes, annotations."""

    folder: Path
    db: Path
    labels: TermMatrix
    seq_hash: pd.Series  # protein -> int64 sequence hash

    def annotations(self) -> pd.DataFrame:
        return pd.read_parquet(self.folder / ANNOTATIONS)


_LOADED: dict[str, PreparedReference] = {}  # one load per process (cross-fitting fits the member 5 times)


def load_reference(folder: str | os.PathLike) -> PreparedReference:
    folder = Path(folder)
    key = str(folder.resolve())
    if key not in _LOADED:
        if not (folder / LABELS).is_file() or not (folder / DB).is_file():
            raise MissingWeightsError(f"{folder}: no {LABELS}/{DB}; prepare the reference there first.")
        proteins = pd.read_parquet(folder / PROTEINS)
        _LOADED.clear()  # a few GB at most: keep only the latest
        _LOADED[key] = PreparedReference(
            folder,
            folder / DB,
            load_term_matrix(folder / LABELS),
            pd.Series(proteins["seq_hash"].to_numpy(), index=proteins["protein"].to_numpy()),
        )
    return _LOADED[key]


def prepare_reference(
    databases: list[dict],
    evidence: Any,
    ontology: Any,
    obo: str | os.PathLike,
    cache_dir: str | os.PathLike,
    threads: int = 1,
    executable: str = "diamond",
) -> PreparedReference:
    """The prepared reference of `databases` (read, evidence-filtered, resolved against `ontology`,
    propagated, DIAMOND-indexed), cached in `<cache_dir>/reference-<content hash>/`."""
    evidence_codes(evidence)  # a bad filter fails before any reading
    diamond_binary(executable)
    folder = Path(cache_dir) / f"reference-{reference_key(databases, evidence, obo)[:16]}"
    if (folder / MANIFEST).is_file():
        return load_reference(folder)
    data = read_databases(databases)
    table = filter_evidence(data.annotations, evidence)
    mapping = {t: ontology.resolve(t) for t in pd.unique(table["term"])}
    unknown = [t for t, p in mapping.items() if p is None]
    dropped_rows = int(table["term"].isin(unknown).sum())
    if unknown:
        log.warning(
            "reference: %d term ids unknown or obsolete in %s (%d rows) dropped, e.g. %s",
            len(unknown), obo, dropped_rows, ", ".join(unknown[:5]),
        )  # fmt: skip
    table = table.assign(term=table["term"].map(mapping)).dropna(subset=["term"])
    table = table.drop_duplicates(["protein", "term", "evidence"]).reset_index(drop=True)
    proteins = list(dict.fromkeys(table["protein"]))  # proteins with at least one kept annotation
    if not proteins:
        raise InputError(f"reference: no annotation passes reference.evidence={evidence!r}; widen the filter.")
    rows = pd.Index(proteins).get_indexer(table["protein"])
    cols = np.array([ontology.index[t] for t in table["term"]])
    raw = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(proteins), len(ontology.terms)))
    blocks = [ontology.propagate(raw[i : i + 100_000]) for i in range(0, raw.shape[0], 100_000)]
    full = sp.vstack(blocks, format="csr")
    carried = np.flatnonzero(np.diff(full.tocsc().indptr) > 0)
    labels = TermMatrix(proteins, [ontology.terms[j] for j in carried], full[:, carried].tocsr())
    sequences = [data.sequences[p] for p in proteins]
    with atomic_dir(folder) as tmp:
        fasta = tmp / "reference.fasta"
        write_fasta(fasta, zip(proteins, sequences))
        built = build_db(fasta, tmp / "build", None, threads, executable)
        shutil.move(built, tmp / DB)
        shutil.rmtree(tmp / "build")
        fasta.unlink()
        frame = pd.DataFrame(
            {"protein": proteins, "seq_hash": sequence_hash(sequences), "length": [len(s) for s in sequences]}
        )
        frame.to_parquet(tmp / PROTEINS, index=False)
        table.to_parquet(tmp / ANNOTATIONS, index=False)
        save_term_matrix(tmp / LABELS, labels)
        manifest = {
            "databases": databases,
            "evidence": evidence,
            "obo": str(obo),
            "proteins": len(proteins),
            "proteins_read": len(data.sequences),
            "annotations": len(table),
            "propagated_labels": int(labels.matrix.nnz),
            "terms": len(labels.terms),
            "dropped_terms": len(unknown),
            "dropped_rows": dropped_rows,
        }
        write_json(tmp / MANIFEST, manifest)
    log.info("reference prepared in %s: %s", folder, manifest)
    return load_reference(folder)


def filter_hits(
    hits: pd.DataFrame,
    query_ids: list[str],
    query_hash: np.ndarray,
    target_hash: pd.Series,
    exclude: str,
    holdout: set[str],
    holdout_max_identity: float,
    input_ids: Collection[str] = (),
    input_hash: np.ndarray | None = None,
) -> pd.DataFrame:
    """The hits allowed to vote (see the module doc): own entries, identical sequences, the other queries
    (exclude: queries) of the call and of the whole input it is a batch of (`input_ids`, `input_hash`) and, for
    holdout queries, hits above holdout_max_identity % identity."""
    if hits.empty:
        return hits
    qhash = pd.Series(query_hash, index=query_ids)
    th = target_hash.reindex(hits["sseqid"]).to_numpy()
    qh = qhash.reindex(hits["qseqid"]).to_numpy()
    is_holdout = hits["qseqid"].isin(holdout).to_numpy()
    own = (hits["qseqid"].to_numpy() == hits["sseqid"].to_numpy()) | (th == qh)
    others = set(query_ids).union(input_ids)
    other_hash = query_hash if input_hash is None else np.concatenate([query_hash, input_hash])
    batch = hits["sseqid"].isin(others).to_numpy() | np.isin(th, other_hash)
    drop = is_holdout & (own | batch | (hits["pident"].to_numpy() > holdout_max_identity))
    if exclude == "queries":
        drop |= own | batch
    elif exclude == "self":
        drop |= own
    return hits[~drop]
