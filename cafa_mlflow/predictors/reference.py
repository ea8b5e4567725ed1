"""Reference transfer: GO annotations of a large annotated database (UniProt Swiss-Prot, GOA, Debian's
metastudent-data), electronic ones included, transferred to queries by DIAMOND homology.

The reference is prepared once and cached by content hash (`<reference.out>/reference-<hash>/`): its
sequences (FASTA and DIAMOND database, built by `data.diamond.make_db`), a per-protein sequence hash,
the annotation table after the evidence filter (parquet) and the labels propagated with the product's
ontology (terms unknown to its GO release are dropped and counted in manifest.json). Scores are the
bitscore vote of the hits' labels with per-aspect denominators (predictors/reference_vote.py).

Leakage rules (params.yaml `reference.exclude`, `reference.holdout_max_identity`):
- `queries`: no query's own entry and no sequence identical to a query votes for any query of the same
  call, or of the whole input when `set_query_set` named it (`cafa predict`: the FASTA, however batched or
  sharded; the bundled test set: its proteins' entries are removed from the reference, as in
  docs/reference.md); `self`: only a query's own entry and identical sequences are removed; `none`: nothing
  (Kaggle: the test proteins' own electronic annotations are present in GOA and legitimate).
- Proteins of the training pool (validation and out-of-fold queries, `holdout_ids`) always get the
  `queries` rule, plus: hits above `holdout_max_identity` % identity are dropped, so that validation looks
  like the test set (chosen by measurement: benchmarks/RESULTS.md, "Reference transfer"), and
  `holdout_own_terms` says what their hits may transfer of the terms their own entry carries (the echo of
  their own earlier annotations in their orthologs' entries: predictors/reference_echo.py).
- `near_identity` (off at 0): for every query, hits with at least that % identity whose best HSP covers at least
  `near_identity_coverage` % of both lengths are dropped too (another entry, strain or isoform of the query's own
  protein, which neither its accession nor an identical sequence finds; benchmarks/RESULTS.md, "Reference
  near-identity rule").
- A query's own entry is the entry of its id, of the UniProt accession its FASTA header gives after a CAFA
  target id (`>T96060000001 P12345`), of the accession `reference.id_map` or `set_query_set` gives, or any
  entry with an identical sequence.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cafa_mlflow.data.diamond import COVERAGE_COLUMNS, FEATURE_COLUMNS, SENSITIVITIES, hit_columns
from cafa_mlflow.data.reference import (
    CACHE_FILES,
    EXCLUDE,
    REPREPARE,
    Evidence,
    PreparedReference,
    drop_near_identical,
    filter_hits,
    load_reference,
    prepare_reference,
    sequence_hash,
    training_pool,
    unavailable,
)
from cafa_mlflow.data.search_engine import SearchEngine
from cafa_mlflow.errors import ConfigError
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.io import integrity
from cafa_mlflow.io.fasta import read_fasta, write_fasta
from cafa_mlflow.io.id_map import read_id_map
from cafa_mlflow.io.readback import load_npy, read_json, reading
from cafa_mlflow.io.text import atomic_write, link_or_copy, write_json
from cafa_mlflow.predictors.base import SEQUENCE, Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.hit_features import HitFeatures
from cafa_mlflow.predictors.reference_echo import OWN_TERMS
from cafa_mlflow.predictors.reference_vote import holdout_mask, reference_term_features, reference_vote
from cafa_mlflow.predictors.transfer import aspect_root_columns, hit_evidence

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params, ReferenceParams
    from cafa_mlflow.go.ontology import Ontology

log = logging.getLogger(__name__)
NEAR_IDENTITY_OFF = (0.0, 0.0)  # reference.near_identity, near_identity_coverage: no hit is dropped as near-identical


class ReferencePredictor(Predictor):
    """DIAMOND search against a prepared reference database, then a bitscore vote of its hits' labels."""

    kind = "reference"

    @classmethod
    def unavailable(cls, params: Params) -> str | None:
        """Why the reference member is not run (reference.use: never, or auto and not installed); None: it runs
        (with use: always a missing file fails loudly)."""
        block = params.reference
        if block.use == "never":
            return "reference.use is never"
        return None if block.use == "always" else unavailable(block)

    def __init__(
        self,
        databases: list[dict],
        ontology: Ontology | None,
        obo: str | os.PathLike,
        cache_dir: str | os.PathLike = "outputs/reference",
        evidence: Evidence = "all",
        sensitivity: str = "default",
        evalue: float = 1e-3,
        max_target_seqs: int = 50,
        threads: int = 0,
        exclude: str = "queries",
        holdout_max_identity: float = 100.0,
        holdout_ids: Collection[str] = (),
        executable: str = "diamond",
        holdout_own_terms: str = "vote",
        accessions: Mapping[str, str] | None = None,
        near_identity: tuple[float, float] = NEAR_IDENTITY_OFF,
        engine: SearchEngine | None = None,
    ) -> None:
        if holdout_own_terms not in OWN_TERMS:
            raise ConfigError(f"reference.holdout_own_terms={holdout_own_terms!r}: use one of {', '.join(OWN_TERMS)}.")
        if sensitivity not in SENSITIVITIES:
            raise ConfigError(f"reference.sensitivity={sensitivity!r}: use one of {', '.join(SENSITIVITIES)}.")
        if exclude not in EXCLUDE:
            raise ConfigError(f"reference.exclude={exclude!r}: use one of {', '.join(EXCLUDE)}.")
        self.databases, self.ontology, self.obo = [dict(d) for d in databases], ontology, obo
        self.cache_dir, self.evidence_filter, self.sensitivity = Path(cache_dir), evidence, sensitivity
        self.evalue, self.max_target_seqs = float(evalue), int(max_target_seqs)
        self.threads = int(threads) or (os.cpu_count() or 1)
        self.exclude, self.holdout_max_identity = exclude, float(holdout_max_identity)
        self.holdout = set(holdout_ids)
        self.executable, self.holdout_own_terms = executable, holdout_own_terms
        self.accessions = dict(accessions or {})  # query id -> UniProt accession (CAFA target ids)
        self.near_identity = (float(near_identity[0]), float(near_identity[1]))  # (identity %, coverage %); 0 = off
        self.engine = engine or SearchEngine()  # the aligner; its MMseqs2 index lives in the user cache
        self.ref: PreparedReference | None = None
        self.search_db: Path | None = None  # what the engine searches: reference.dmnd or its MMseqs2 index
        self.root_col: np.ndarray | None = None
        self.hits: pd.DataFrame | None = None
        self.input_ids: set[str] = set()  # set_query_set: the whole input the predict() calls are batches of
        self.input_hash = np.zeros(0, dtype=np.int64)

    @classmethod
    def needs(cls, params: Params) -> dict[str, Any]:
        # the ontology file (part of the cache key) and the training pool's proteins (validation / out-of-fold
        # queries), read here so that from_params reads no file
        id_map = params.reference.id_map
        return {
            "obo": params.data.obo,
            "holdout_ids": training_pool(params.prepare.out),
            "accessions": read_id_map(id_map) if id_map else {},
        }

    @classmethod
    def from_params(
        cls,
        block: ReferenceParams,
        ontology: Ontology,
        obo: str | os.PathLike,
        holdout_ids: Collection[str] = (),
        accessions: Mapping[str, str] | None = None,
    ) -> ReferencePredictor:
        """An unfitted member from its params.yaml block, the product's ontology (and its OBO file, part of the
        cache key), the training pool's proteins (validation / out-of-fold queries: data.reference.
        training_pool) and the accessions of query ids that are not accessions (reference.id_map)."""
        return cls(
            [dict(d) for d in block.databases],
            ontology,
            obo,
            block.out,
            list(block.evidence) if not isinstance(block.evidence, str) else block.evidence,
            block.sensitivity,
            block.evalue,
            block.max_target_seqs,
            block.threads,
            block.exclude,
            block.holdout_max_identity,
            holdout_ids,
            block.executable,
            block.holdout_own_terms,
            accessions,
            (block.near_identity, block.near_identity_coverage),
            SearchEngine.from_block(block),
        )

    def inputs(self) -> set[str]:
        return {SEQUENCE}

    def set_threads(self, threads: int) -> None:
        self.threads = int(threads) or (os.cpu_count() or 1)

    def set_query_set(
        self, ids: Sequence[str], sequences: Sequence[str], accessions: Sequence[str | None] | None = None
    ) -> None:
        """The whole input the next predict() calls are batches of, and the UniProt accession of each id that
        is not one itself (a CAFA target id; None where the id is the accession)."""
        self.input_ids, self.input_hash = set(ids), sequence_hash(list(sequences))
        self.accessions.update((i, a) for i, a in zip(ids, accessions or ()) if a)

    def fit(self, train: TrainSet) -> ReferencePredictor:
        """Prepare (or reuse) the reference; the training proteins are not used (only their ids are
        holdout queries, see the module doc)."""
        self.holdout |= set(train.ids)
        if self.ref is None:
            self.ref = prepare_reference(
                self.databases,
                self.evidence_filter,
                self.ontology,
                self.obo,
                self.cache_dir,
                self.threads,
                self.executable,
            )
            self.root_col = aspect_root_columns(self.ref.labels.terms, self.ontology)
        if self.search_db is None:
            self.use_engine(self.engine)
        return self

    def use_engine(self, engine: SearchEngine) -> None:
        """Search with `engine` from now on (an MMseqs2 index is built or reused in the user cache, keyed by the
        reference database's content, so the chain, `cafa predict` and a served model share one)."""
        self._require_fitted("ref")
        self.engine, self.search_db = engine, engine.prepare(self.ref.db, None, self.threads, self.executable)

    def _header_accessions(self, proteins: ProteinSet) -> dict[str, str]:
        """The accessions known for `proteins`: set before (id map, set_query_set) and from their FASTA's headers
        (`>T96060000001 P12345`)."""
        found = {i: self.accessions[i] for i in proteins.ids if i in self.accessions}
        if proteins.fasta is not None:
            wanted = set(proteins.ids)
            found.update((r.id, r.accession) for r in read_fasta(proteins.fasta) if r.accession and r.id in wanted)
        return found

    def predict(self, proteins: ProteinSet) -> TermMatrix:
        self._require_fitted("ref")
        proteins.require({SEQUENCE}, self.kind)
        if proteins.fasta is None:
            with tempfile.TemporaryDirectory(prefix="cafa-queries-") as tmp:
                fasta = Path(tmp) / "queries.fasta"
                write_fasta(fasta, zip(proteins.ids, proteins.sequences))
                return self.predict(ProteinSet(proteins.ids, fasta=fasta, sequences=proteins.sequences))
        k = self.max_target_seqs
        holdout_cut = self.holdout_max_identity < 100 and any(i in self.holdout for i in proteins.ids)
        near = self.near_identity[0] > 0
        extra = (k if holdout_cut or near else 0) + 10  # room for the hits that are dropped below
        hits = self.engine.search(
            self.search_db or self.ref.db,
            proteins.fasta,
            proteins.ids,
            self.sensitivity,
            self.evalue,
            k + extra if k else 0,
            self.threads,
            self.executable,
            columns=hit_columns(FEATURE_COLUMNS, COVERAGE_COLUMNS if near else ()),  # features: term_features
        )
        qhash = sequence_hash(proteins.read_sequences())
        accessions = {**self.accessions, **self._header_accessions(proteins)}
        hits = filter_hits(
            hits,
            proteins.ids,
            qhash,
            self.ref.seq_hash,
            self.exclude,
            self.holdout.intersection(proteins.ids),  # the same rule; isin() of the whole pool costs 0.1 s a call
            self.holdout_max_identity,
            self.input_ids,
            self.input_hash,
            accessions,
        )
        hits = drop_near_identical(hits, *self.near_identity)
        if k:
            hits = hits[hits.groupby("qseqid", sort=False).cumcount() < k]  # sorted by bitscore
        self.hits = hits.reset_index(drop=True)
        self.last_ids = list(proteins.ids)  # the rows of term_features
        return self._vote(proteins.ids, qhash, accessions)

    def _vote(self, ids: list[str], qhash: np.ndarray, accessions: Mapping[str, str]) -> TermMatrix:
        """The bitscore vote of the last hits; holdout queries transfer no term of their own entry's that
        holdout_own_terms removes (predictors/reference_vote.py)."""
        held = np.array([i in self.holdout for i in ids], dtype=bool)
        mask = holdout_mask(self.ref, ids, qhash, accessions, held, self.holdout_own_terms, self.root_col)
        self.last_mask = mask  # term_features masks the same (computed once)
        return reference_vote(self.hits, ids, self.ref, mask, self.root_col, self._reference_index())

    def term_features(self) -> HitFeatures | None:
        """Hit statistics per (query, term) of the last predict()'s voting hits; a hit carries what it transferred
        in the vote (its labels minus the holdout mask of its query)."""
        if self.hits is None or self.ref is None or not hasattr(self, "last_ids"):
            return None
        return reference_term_features(self.hits, self.last_ids, self.ref, self.last_mask, self._reference_index())

    def _reference_index(self) -> pd.Index:
        """The reference's proteins as an index, built once per loaded reference, not per call (516k ids: 0.1-0.2 s
        a call, most of a served protein's time in this member)."""
        if getattr(self, "_index_of", None) is not self.ref:
            self._index, self._index_of = pd.Index(self.ref.labels.proteins), self.ref
        return self._index

    def evidence(self, protein: str, terms: Sequence[str], top: int = 3) -> dict[str, list[dict]] | None:
        """The hook `cafa explain` and the served model read: for each term, the best hits of the last predict()
        that carry it (reference accession, identity, e-value, bitscore) and the evidence code(s) of the hit's
        own annotation with that term ('propagated' when only a descendant term is annotated)."""
        if self.hits is None or self.ref is None:
            return None
        hits = self.hits[self.hits["qseqid"] == protein]  # best bitscore first (search order)
        table = self.hit_table([protein])
        codes = table.groupby(["reference", "term"])["evidence"].agg(lambda c: ",".join(sorted(set(c))) or "?")
        return hit_evidence(
            hits, self.ref.labels, terms, top, self.kind, lambda target, term: codes.get((target, term), "propagated")
        )

    def hit_table(self, query_ids: Collection[str] | None = None) -> pd.DataFrame:
        """The evidence of the last predict() as a table: one row per (query, hit, direct annotation of the hit)
        with query, reference (accession), identity, bitscore, evalue, term and evidence (code; '' = unknown)."""
        self._require_fitted("hits")
        hits = self.hits if query_ids is None else self.hits[self.hits["qseqid"].isin(set(query_ids))]
        ann = self.ref.annotations()
        ann = ann[ann["protein"].isin(set(hits["sseqid"]))]
        out = hits.merge(ann, left_on="sseqid", right_on="protein")
        out = out.rename(columns={"qseqid": "query", "sseqid": "reference", "pident": "identity"})
        return out[["query", "reference", "identity", "bitscore", "evalue", "term", "evidence"]]

    def save_files(self, folder: Path) -> None:
        """The prepared reference's files (hard links where possible) and config.json."""
        self._require_fitted("ref")
        folder = Path(folder)
        # the files are checked again (free while unchanged) so that the model's own checksums, written by
        # `save`, never record data that was damaged after it was read
        integrity.verify_folder(self.ref.folder, self.ref.fix)
        for name in CACHE_FILES:
            link_or_copy(self.ref.folder / name, folder / name)
        config = {
            "sensitivity": self.sensitivity,
            "evalue": self.evalue,
            "max_target_seqs": self.max_target_seqs,
            "exclude": self.exclude,
            "holdout_max_identity": self.holdout_max_identity,
            "holdout_own_terms": self.holdout_own_terms,
            "near_identity": list(self.near_identity),
            "evidence": self.evidence_filter,
            "databases": self.databases,
            "engine": self.engine.to_config(),
        }
        write_json(folder / "config.json", config)
        with atomic_write(folder / "root_columns.npy", "wb") as handle:
            np.save(handle, self.root_col)
        (folder / "holdout_ids.txt").write_text("\n".join(sorted(self.holdout)) + "\n")

    @classmethod
    def load_files(cls, folder: Path, threads: int = 0, executable: str = "diamond") -> ReferencePredictor:
        folder = Path(folder)
        config = read_json(folder / "config.json", REPREPARE)
        with reading(folder / "holdout_ids.txt", REPREPARE) as path:
            holdout = path.read_text().split()
        self = cls(
            config["databases"],
            None,
            "",
            folder,
            config["evidence"],
            config["sensitivity"],
            config["evalue"],
            config["max_target_seqs"],
            threads,
            config["exclude"],
            config["holdout_max_identity"],
            holdout,
            executable,
            config.get("holdout_own_terms", "vote"),  # models saved before the setting: no correction
            None,
            tuple(config.get("near_identity", NEAR_IDENTITY_OFF)),  # models saved before the setting: off
            engine=SearchEngine.from_config(config.get("engine")),  # saved before engines: DIAMOND
        )
        self.ref = load_reference(folder)
        self.root_col = load_npy(folder / "root_columns.npy", REPREPARE)
        self.use_engine(self.engine)
        return self
