"""Homology transfer with DIAMOND: score(t) = bitscore of hits carrying t / bitscore of all hits.

The training database is built and cached by `data.diamond` (hash of the FASTA bytes and of the chosen
protein subset). Labels must be propagated; hits become a sparse queries x train bitscore matrix W,
row-normalised, and scores = W @ labels.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.data.diamond import FEATURE_COLUMNS, SENSITIVITIES, build_db, copy_atomic, hit_columns
from cafa_mlflow.data.search_engine import SearchEngine, user_index_cache_on
from cafa_mlflow.errors import ConfigError, InputError, MissingWeightsError
from cafa_mlflow.go.labels import TermMatrix, load_term_matrix, save_term_matrix
from cafa_mlflow.io.fasta import write_fasta
from cafa_mlflow.io.readback import load_npy, read_json
from cafa_mlflow.io.text import atomic_write, write_json
from cafa_mlflow.predictors.base import SEQUENCE, Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.hit_features import HitFeatures, hit_features
from cafa_mlflow.predictors.transfer import aspect_root_columns, hit_evidence, hit_matrix, vote

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import HomologyParams
    from cafa_mlflow.go.ontology import Ontology


def hits_to_scores(
    hits: pd.DataFrame,
    query_ids: Sequence[str],
    labels: TermMatrix,
    exclude_self: bool = True,
    max_target_seqs: int | None = None,
    aspect_of: Any = None,
    root_col: np.ndarray | None = None,
) -> TermMatrix:
    """Bitscore-weighted vote: queries x labels.terms scores from hits (qseqid, sseqid, bitscore).

    Every term of `labels` can be transferred (pass the full propagated labels, not a vocabulary).
    Denominator: with aspect_of (Ontology or {term: aspect}) or root_col (see
    `transfer.aspect_root_columns`) only hits annotated in the term's aspect; else every hit, also one
    to a target without labels. Hits of queries not in `query_ids` are ignored. exclude_self drops hits
    with qseqid == sseqid; max_target_seqs (None or 0 = all) then keeps the best N remaining hits per query."""
    hits = hits[hits["qseqid"].isin(set(query_ids))]
    if exclude_self:
        hits = hits[hits["qseqid"] != hits["sseqid"]]
    if max_target_seqs:
        hits = hits.sort_values("bitscore", ascending=False, kind="stable")
        hits = hits[hits.groupby("qseqid", sort=False).cumcount() < max_target_seqs]
    weights = hit_matrix(hits, query_ids, labels.proteins)
    if root_col is None:
        root_col = aspect_root_columns(labels.terms, aspect_of)
    total = hits.groupby("qseqid")["bitscore"].sum().reindex(list(query_ids)).fillna(0.0).to_numpy(np.float64)
    known = np.asarray(weights.sum(axis=1)).ravel()
    # hits to targets without labels still count in the all-hits denominator: one extra unlabeled column
    extra = sp.csr_matrix((total - known).clip(min=0)[:, None])
    scores = vote(
        sp.hstack([weights, extra]), sp.vstack([labels.matrix, sp.csr_matrix((1, len(labels.terms)))]), root_col
    )
    return TermMatrix(list(query_ids), labels.terms, scores)


class HomologyPredictor(Predictor):
    """DIAMOND search against the training proteins, then a bitscore-weighted vote of their labels."""

    kind = "homology"

    @classmethod
    def from_params(cls, block: HomologyParams, ontology: Ontology) -> HomologyPredictor:
        b = block
        engine = SearchEngine.from_block(b)
        return cls(
            b.out, b.sensitivity, b.evalue, b.max_target_seqs, b.threads, b.exclude_self, b.executable, ontology, engine
        )

    def inputs(self) -> set[str]:
        return {SEQUENCE}

    def set_threads(self, threads: int) -> None:
        self.threads = int(threads) or (os.cpu_count() or 1)

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        sensitivity: str = "sensitive",
        evalue: float = 1e-3,
        max_target_seqs: int = 25,
        threads: int = 0,
        exclude_self: bool = True,
        executable: str = "diamond",
        aspect_of: Any = None,
        engine: SearchEngine | None = None,
    ) -> None:
        """threads 0 = all CPU cores; max_target_seqs 0 = every hit passing the e-value; `hits` keeps the raw
        hits of the last predict(); aspect_of (Ontology or {term: aspect}) turns on per-aspect denominators
        (only hits annotated in a term's aspect count); engine: the aligner (DIAMOND when None)."""
        self.cache_dir, self.sensitivity, self.evalue = Path(cache_dir), sensitivity, float(evalue)
        self.max_target_seqs, self.exclude_self = int(max_target_seqs), bool(exclude_self)
        self.threads = int(threads) or (os.cpu_count() or 1)
        self.executable, self.aspect_of = executable, aspect_of
        self.root_col: np.ndarray | None = None
        self.engine = engine or SearchEngine()
        self.db: Path | None = None  # the DIAMOND database
        self.search_db: Path | None = None  # what the engine searches (the DIAMOND database or an index of it)
        self.labels: TermMatrix | None = None
        self.hits: pd.DataFrame | None = None
        self.last_ids: list[str] = []

    def fit(self, train: TrainSet) -> HomologyPredictor:
        """Build (or reuse) the database of the training proteins `train.ids` only."""
        if self.sensitivity not in SENSITIVITIES:
            raise ConfigError(f"homology.sensitivity={self.sensitivity!r}: use one of {', '.join(SENSITIVITIES)}.")
        if train.fasta is None:
            raise InputError("homology needs the training sequences (TrainSet.fasta).")
        self.labels = train.labels
        self.root_col = aspect_root_columns(self.labels.terms, self.aspect_of)
        self.db = build_db(train.fasta, self.cache_dir, train.ids, self.threads, self.executable)
        # batch searches (thousands of queries against a small database) need no k-mer index (930 MB at -s 7.5
        # for the 16k-protein pool); a loaded model, which serves few queries, builds one (same hits)
        self.search_db = self.engine.prepare(self.db, self.cache_dir, self.threads, self.executable, index=False)
        return self

    def use_engine(self, engine: SearchEngine, cache_dir: str | os.PathLike | None = None) -> None:
        """Search with `engine` from now on (its index built or reused in `cache_dir`, else the user cache)."""
        self._require_fitted("db")
        self.engine, self.search_db = engine, engine.prepare(self.db, cache_dir, self.threads, self.executable)

    def prepare_loading(self) -> None:
        """The k-mer index that a loaded copy builds (data.search_engine: the user cache, keyed by the database's
        content) built now: the test search uses it instead of building the same table on the fly, and the ensemble
        step, which loads the member, finds it (same hits: tests/test_mmseqs.py). Not with the user cache off
        (`CAFA_CACHE_DIR=off`: each load builds its own)."""
        if self.engine.builds_index and user_index_cache_on():
            self.use_engine(self.engine)

    def predict(self, proteins: ProteinSet) -> TermMatrix:
        self._require_fitted("db")
        proteins.require({SEQUENCE}, self.kind)
        if proteins.fasta is None:  # sequences only (e.g. the served model's input): write them for DIAMOND
            with tempfile.TemporaryDirectory(prefix="cafa-queries-") as tmp:
                fasta = Path(tmp) / "queries.fasta"
                write_fasta(fasta, zip(proteins.ids, proteins.sequences))
                return self.predict(ProteinSet(proteins.ids, fasta=fasta))
        # one extra target per query so that dropping the self-hit still leaves max_target_seqs hits
        n = self.max_target_seqs + (1 if self.exclude_self else 0) if self.max_target_seqs else 0
        self.last_ids = list(proteins.ids)
        self.hits = self.engine.search(
            self.search_db or self.db,
            proteins.fasta,
            proteins.ids,
            self.sensitivity,
            self.evalue,
            n,
            self.threads,
            self.executable,
            columns=hit_columns(FEATURE_COLUMNS),  # what term_features reads
        )
        return hits_to_scores(
            self.hits, proteins.ids, self.labels, self.exclude_self, self.max_target_seqs, root_col=self.root_col
        )

    def term_features(self) -> HitFeatures | None:
        """Hit statistics per (query, term) of the hits the last predict() voted with (self-hits dropped, the best
        max_target_seqs kept, as hits_to_scores does); rows: the queries of that predict()."""
        if self.hits is None or self.labels is None:
            return None
        hits = self.hits[self.hits["qseqid"].isin(set(self.last_ids))]
        if self.exclude_self:
            hits = hits[hits["qseqid"] != hits["sseqid"]]
        if self.max_target_seqs:
            hits = hits.sort_values("bitscore", ascending=False, kind="stable")
            hits = hits[hits.groupby("qseqid", sort=False).cumcount() < self.max_target_seqs]
        rows = pd.Index(self.labels.proteins).get_indexer(hits["sseqid"])
        carried = sp.csr_matrix(self.labels.matrix)[np.maximum(rows, 0)]
        carried = sp.diags((rows >= 0).astype(np.float32)) @ carried  # hits to unlabeled targets carry nothing
        return hit_features(hits, self.last_ids, carried, self.labels.terms)

    def evidence(self, protein: str, terms: Sequence[str], top: int = 3) -> dict[str, list[dict]] | None:
        """The hits of the last predict() that voted for each term (those hits_to_scores kept), best bitscore
        first: training protein, % identity, e-value, bitscore."""
        if self.hits is None or self.labels is None:
            return None
        if getattr(self, "_groups_of", None) is not self.hits:  # index the hits once per predict()
            self._groups, self._groups_of = self.hits.groupby("qseqid", sort=False).indices, self.hits
        rows = self._groups.get(protein)
        if rows is None:
            return {t: [] for t in terms}
        hits = self.hits.iloc[rows]
        if self.exclude_self:
            hits = hits[hits["sseqid"] != protein]
        hits = hits.sort_values("bitscore", ascending=False, kind="stable").drop_duplicates("sseqid")
        if self.max_target_seqs:
            hits = hits.head(self.max_target_seqs)
        return hit_evidence(hits, self.labels, terms, top, self.kind)

    def save_files(self, folder: Path) -> None:
        """Copy the DIAMOND database (train.dmnd) and write labels.npz and config.json into `folder`."""
        self._require_fitted("db")
        folder = Path(folder)
        copy_atomic(self.db, folder / "train.dmnd")
        save_term_matrix(folder / "labels.npz", self.labels)
        with atomic_write(folder / "root_columns.npy", "wb") as handle:
            np.save(handle, self.root_col)
        config = {
            "sensitivity": self.sensitivity,
            "evalue": self.evalue,
            "max_target_seqs": self.max_target_seqs,
            "exclude_self": self.exclude_self,
            "engine": self.engine.to_config(),
        }
        write_json(folder / "config.json", config)

    @classmethod
    def load_files(cls, folder: Path, threads: int = 0, executable: str = "diamond") -> HomologyPredictor:
        """A fitted predictor from a folder written by `save`; searches need `diamond` on PATH."""
        folder = Path(folder)
        if not (folder / "train.dmnd").is_file() or not (folder / "labels.npz").is_file():
            raise MissingWeightsError(
                f"{folder}: no train.dmnd/labels.npz; fit and save a homology predictor there first."
            )
        config = read_json(folder / "config.json")
        self = cls(
            folder,
            config["sensitivity"],
            config["evalue"],
            config["max_target_seqs"],
            threads,
            config["exclude_self"],
            executable,
            engine=SearchEngine.from_config(config.get("engine")),  # saved before engines: DIAMOND
        )
        self.db, self.labels = folder / "train.dmnd", load_term_matrix(folder / "labels.npz")
        self.search_db = self.engine.prepare(self.db, None, self.threads, executable)  # MMseqs2: user cache
        roots = folder / "root_columns.npy"  # absent in folders saved before per-aspect denominators
        self.root_col = load_npy(roots) if roots.is_file() else aspect_root_columns(self.labels.terms)
        return self
