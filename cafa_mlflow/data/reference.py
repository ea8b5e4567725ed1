"""The prepared reference database: annotated sequences read from UniProt .dat, GAF + FASTA, CAFA-style FASTA +
terms or Debian's metastudent-data (io/reference_formats.py), filtered by evidence, propagated with the product's
GO release and cached by content hash (`<reference.out>/reference-<hash>/`: FASTA and DIAMOND database, a
per-protein sequence hash, the annotation table, the labels, manifest.json), and the leakage rules that drop hits
(`filter_hits`, `drop_near_identical`; see predictors/reference.py)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.data.diamond import diamond_binary, make_db
from cafa_mlflow.errors import InputError
from cafa_mlflow.go.labels import TermMatrix, load_term_matrix, save_term_matrix
from cafa_mlflow.io import integrity
from cafa_mlflow.io.fasta import write_fasta
from cafa_mlflow.io.integrity import hash_file, stamp
from cafa_mlflow.io.readback import read_parquet
from cafa_mlflow.io.reference_formats import (
    ReferenceData,
    database_files,
    evidence_codes,
    filter_evidence,
    read_databases,
)
from cafa_mlflow.io.text import atomic_dir, write_json

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import ReferenceParams
    from cafa_mlflow.go.ontology import Ontology

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
CACHE_FILES = (DB, LABELS, PROTEINS, ANNOTATIONS, MANIFEST)
# the step that owns the prepared reference (a cache) and the saved reference member: it prepares both again
REPREPARE = "run `cafa member --predictor reference` again (it prepares the reference again and saves the member)"
Evidence = str | Sequence[str]  # reference.evidence: `all`, a group or GO code, or a list of them


def sequence_hash(sequences: list[str]) -> np.ndarray:
    """int64 hash of each sequence (blake2b, 8 bytes): identical sequences have equal hashes."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little", signed=True) for s in sequences],
        dtype=np.int64,
    )


_KEYS: dict[tuple, str] = {}  # reference_key per (arguments, files' stamps): a member is fitted 5 times a step


def reference_key(databases: list[dict], evidence: Evidence, obo: str | os.PathLike) -> str:
    """Content hash of the databases' files, their specs, the evidence filter and the OBO file (hashed once per
    process while the files' sizes and modification times stay the same)."""
    files = [database_files(spec) for spec in databases]
    for path in (p for paths in files for p in paths):
        if not path.exists():
            raise InputError(f"{path}: reference database file not found; get it with {INSTALL} or fix the path.")
    stamps = [stamp(p) for paths in files for p in paths]
    memo = (json.dumps([databases, evidence, str(obo)], sort_keys=True, default=str), *stamps, stamp(obo))
    if memo not in _KEYS:
        h = hashlib.sha256(f"v{VERSION}\0".encode())
        for spec, paths in zip(databases, files):
            specs = {k: v for k, v in spec.items() if k not in ("path", "fasta", "terms")}
            h.update(json.dumps(specs, sort_keys=True).encode())
            for path in paths:
                hash_file(h, path)
        h.update(json.dumps(sorted(evidence) if not isinstance(evidence, str) else evidence).encode())
        _KEYS[memo] = hash_file(h, obo).hexdigest()
    return _KEYS[memo]


def unavailable(block: ReferenceParams) -> str | None:
    """Why the reference block cannot be used now (None: it can): files or tools missing. Its values (database
    formats included) were checked when params.yaml was read (config.schema)."""
    for spec in block.databases:
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
    fix: str = REPREPARE

    def annotations(self) -> pd.DataFrame:
        return read_parquet(self.folder / ANNOTATIONS, self.fix)


_LOADED: dict[str, PreparedReference] = {}  # one load per process (cross-fitting fits the member 5 times)


def load_reference(folder: str | os.PathLike, fix: str = REPREPARE) -> PreparedReference:
    """The prepared reference in `folder` (a cache folder or a saved member's model folder), its files checked
    against the checksums recorded when it was written: a missing or damaged file is an InputError naming it
    and `fix`, before any of it is used."""
    folder = Path(folder)
    key = str(folder.resolve())
    missing = [name for name in (DB, LABELS, PROTEINS) if not (folder / name).is_file()]
    if missing:
        raise InputError(f"{folder / missing[0]}: missing; {fix}.")
    integrity.verify_folder(folder, fix)  # checked once per process while the files stay unchanged
    if key not in _LOADED:
        proteins = read_parquet(folder / PROTEINS, fix, columns=["protein", "seq_hash"])
        _LOADED.clear()  # a few GB at most: keep only the latest
        _LOADED[key] = PreparedReference(
            folder,
            folder / DB,
            load_term_matrix(folder / LABELS),
            pd.Series(proteins["seq_hash"].to_numpy(), index=proteins["protein"].to_numpy()),
            fix,
        )
    return _LOADED[key]


def training_pool(prepared_out: str | os.PathLike) -> list[str]:
    """The proteins of the prepared training pool (validation and out-of-fold queries: `holdout_ids`); none
    before `cafa prepare` has run."""
    pool = Path(prepared_out) / "proteins.parquet"
    if not pool.is_file():
        return []
    fix = f"run `cafa prepare` again (it rewrites {pool.parent})"
    return read_parquet(pool, fix, columns=["protein"])["protein"].tolist()


def _annotation_table(
    databases: list[dict], evidence: Evidence, ontology: Ontology, obo: str | os.PathLike
) -> tuple[ReferenceData, pd.DataFrame, dict]:
    """The databases read, evidence-filtered, their terms resolved against `ontology` (unknown or obsolete ones
    dropped, counted in the returned stats) and one row per (protein, term, evidence)."""
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
    if table.empty:
        raise InputError(f"reference: no annotation passes reference.evidence={evidence!r}; widen the filter.")
    return data, table, {"dropped_terms": len(unknown), "dropped_rows": dropped_rows}


def _propagated_labels(table: pd.DataFrame, ontology: Ontology) -> TermMatrix:
    """The proteins with at least one kept annotation (in table order) and their labels propagated with
    `ontology`, restricted to the terms some protein carries."""
    proteins = list(dict.fromkeys(table["protein"]))
    rows = pd.Index(proteins).get_indexer(table["protein"])
    cols = np.array([ontology.index[t] for t in table["term"]])
    raw = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(proteins), len(ontology.terms)))
    blocks = [ontology.propagate(raw[i : i + 100_000]) for i in range(0, raw.shape[0], 100_000)]
    full = sp.vstack(blocks, format="csr")
    carried = np.flatnonzero(np.diff(full.tocsc().indptr) > 0)
    return TermMatrix(proteins, [ontology.terms[j] for j in carried], full[:, carried].tocsr())


def _write_reference(
    tmp: Path, labels: TermMatrix, sequences: list[str], table: pd.DataFrame, threads: int, executable: str
) -> None:
    """The prepared files into the (temporary) folder `tmp`: DIAMOND database, proteins, annotations, labels."""
    proteins = labels.proteins
    fasta = tmp / "reference.fasta"
    write_fasta(fasta, zip(proteins, sequences))  # read by makedb as it is (not read back and written again)
    make_db(fasta, tmp / Path(DB).stem, threads, diamond_binary(executable), f"diamond makedb of {fasta}")
    fasta.unlink()
    frame = pd.DataFrame(
        {"protein": proteins, "seq_hash": sequence_hash(sequences), "length": [len(s) for s in sequences]}
    )
    frame.to_parquet(tmp / PROTEINS, index=False)
    table.to_parquet(tmp / ANNOTATIONS, index=False)
    save_term_matrix(tmp / LABELS, labels)


def prepare_reference(
    databases: list[dict],
    evidence: Evidence,
    ontology: Ontology,
    obo: str | os.PathLike,
    cache_dir: str | os.PathLike,
    threads: int = 1,
    executable: str = "diamond",
) -> PreparedReference:
    """The prepared reference of `databases` (read, evidence-filtered, resolved against `ontology`,
    propagated, DIAMOND-indexed), cached in `<cache_dir>/reference-<content hash>/`. A cache folder that is
    incomplete or damaged (integrity.reusable_cache names the file) is prepared again."""
    evidence_codes(evidence)  # a bad filter fails before any reading
    diamond_binary(executable)
    folder = Path(cache_dir) / f"reference-{reference_key(databases, evidence, obo)[:16]}"
    if integrity.reusable_cache(folder, CACHE_FILES):
        return load_reference(folder)
    data, table, dropped = _annotation_table(databases, evidence, ontology, obo)
    labels = _propagated_labels(table, ontology)
    sequences = [data.sequences[p] for p in labels.proteins]
    with atomic_dir(folder) as tmp:  # sealed: every file's checksum, verified whenever the cache is reused
        _write_reference(tmp, labels, sequences, table, threads, executable)
        manifest = {
            "databases": databases,
            "evidence": evidence,
            "obo": str(obo),
            "proteins": len(labels.proteins),
            "proteins_read": len(data.sequences),
            "annotations": len(table),
            "propagated_labels": int(labels.matrix.nnz),
            "terms": len(labels.terms),
            **dropped,
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
    accessions: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The hits allowed to vote (see the module doc): own entries, identical sequences, the other queries
    (exclude: queries) of the call and of the whole input it is a batch of (`input_ids`, `input_hash`) and, for
    holdout queries, hits above holdout_max_identity % identity. `accessions`: the UniProt accession of a query
    or input id that is not one itself (a CAFA target id), whose entry is then its own entry too."""
    if hits.empty:
        return hits
    accessions = accessions or {}
    qhash = pd.Series(query_hash, index=query_ids)
    th = target_hash.reindex(hits["sseqid"]).to_numpy()
    qh = qhash.reindex(hits["qseqid"]).to_numpy()
    is_holdout = hits["qseqid"].isin(holdout).to_numpy()
    targets = hits["sseqid"].to_numpy()
    own_accession = hits["qseqid"].map(accessions).to_numpy() == targets if accessions else False
    own = (hits["qseqid"].to_numpy() == targets) | own_accession | (th == qh)
    others = set(query_ids).union(input_ids)
    others |= {accessions[i] for i in others if i in accessions}
    other_hash = query_hash if input_hash is None else np.concatenate([query_hash, input_hash])
    batch = hits["sseqid"].isin(others).to_numpy() | np.isin(th, other_hash)
    drop = is_holdout & (own | batch | (hits["pident"].to_numpy() > holdout_max_identity))
    if exclude == "queries":
        drop |= own | batch
    elif exclude == "self":
        drop |= own
    return hits[~drop]


def drop_near_identical(hits: pd.DataFrame, min_identity: float, min_coverage: float) -> pd.DataFrame:
    """The hits that are not near-identical to their query: a hit with >= `min_identity` % identity whose best HSP
    covers >= `min_coverage` % of both the query's and the target's length (DIAMOND's qcovhsp, scovhsp) is dropped
    (another entry, strain or isoform of the query's own protein); `min_identity` 0 = every hit kept."""
    if not min_identity or hits.empty:
        return hits
    near = (
        (hits["pident"].to_numpy() >= min_identity)
        & (hits["qcovhsp"].to_numpy() >= min_coverage)
        & (hits["scovhsp"].to_numpy() >= min_coverage)
    )
    return hits[~near]
