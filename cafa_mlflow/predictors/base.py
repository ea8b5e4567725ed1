"""The one predictor protocol: `fit(TrainSet)`, `predict(ProteinSet) -> TermMatrix`, `save(folder)`,
`load(folder)`, and `inputs()`: what a predictor needs to know about a protein.

Every member (naive, homology, knn, neural, the ensemble itself) speaks it, and the registry
(`predictors/registry.py`) maps kind names to classes, so nothing else branches on a member's name.
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cafa_mlflow.errors import InputError, MissingWeightsError, NotFittedError
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.io import integrity
from cafa_mlflow.io.fasta import read_fasta
from cafa_mlflow.io.readback import read_json
from cafa_mlflow.io.text import seal, write_json

if TYPE_CHECKING:
    from cafa_mlflow.config.blocks import Block
    from cafa_mlflow.config.schema import Params
    from cafa_mlflow.go.ontology import Ontology
    from cafa_mlflow.predictors.hit_features import HitFeatures

EMBEDDING, CHUNKS, SEQUENCE = "embedding", "chunks", "sequence"  # what a predictor may need per protein
META_FILE = "predictor.json"  # kind + embedding settings, beside each saved predictor's own files


@dataclass
class ProteinSet:
    """Proteins to score: ids plus the inputs predictors may need, row-aligned with `ids`."""

    ids: list[str]
    embeddings: Any = None  # N x D pooled vectors (np.memmap allowed), row i = ids[i]; or their Future (`resolved`)
    fasta: str | os.PathLike | None = None  # sequences of (at least) `ids`; plain, .gz or .xz
    sequences: list[str] | None = None  # row i = ids[i]
    chunks: Any = None  # per-chunk vectors for chunk models (neural Inputs over `ids`)

    def __post_init__(self) -> None:
        self.ids = list(self.ids)
        for name in ("embeddings", "sequences"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Future) and len(value) != len(self.ids):
                raise InputError(
                    f"{len(value)} {name} rows for {len(self.ids)} protein ids; pass one per id, in the same order."
                )

    def read_sequences(self) -> list[str]:
        """The sequences of `ids`, in order: `sequences`, else read from `fasta`."""
        if self.sequences is not None:
            return list(self.sequences)
        wanted = set(self.ids)
        found = {r.id: r.sequence for r in read_fasta(self.fasta) if r.id in wanted}
        return [found[i] for i in self.ids]

    def resolved(self) -> ProteinSet:
        """This set with its embeddings at hand: a Future of them (the served model embeds a request while the
        members that need no vectors already search) is waited for; its error, if any, is raised here."""
        if isinstance(self.embeddings, Future):
            return dataclasses.replace(self, embeddings=self.embeddings.result())
        return self

    def for_inputs(self, needs: set[str]) -> ProteinSet:
        """What a predictor reading `needs` gets: pending embeddings waited for when it reads vectors, left out
        when it does not (a search member starts before the encoder is done)."""
        if not isinstance(self.embeddings, Future):
            return self
        return self.resolved() if needs & {EMBEDDING, CHUNKS} else dataclasses.replace(self, embeddings=None)

    def take(self, rows: Sequence[int] | np.ndarray) -> ProteinSet:
        """The proteins at `rows` with their inputs (e.g. one cross-fitting fold)."""
        rows = np.asarray(rows, dtype=np.int64)
        return ProteinSet(**self._taken(rows))

    def _taken(self, rows: np.ndarray) -> dict[str, Any]:
        source = self.resolved()
        chunks = None
        if source.chunks is not None:  # chunk inputs (neural Inputs): a view of their rows, no copy
            from cafa_mlflow.predictors.neural.data import SubsetInputs

            chunks = SubsetInputs(source.chunks, rows)
        return {
            "ids": [source.ids[i] for i in rows],
            "embeddings": None if source.embeddings is None else source.embeddings[rows],
            "fasta": source.fasta,
            "sequences": None if source.sequences is None else [source.sequences[i] for i in rows],
            "chunks": chunks,
        }

    def require(self, needs: set[str], who: str) -> None:
        """InputError when an input that `who` needs is missing."""
        have = {EMBEDDING: self.embeddings, CHUNKS: self.chunks, SEQUENCE: self.sequences or self.fasta}
        missing = sorted(n for n in needs if have.get(n) is None)
        if missing:
            raise InputError(f"the {who} predictor needs {', '.join(missing)} for each protein; provide them first.")


@dataclass
class TrainSet(ProteinSet):
    """Training proteins with their propagated labels (rows of `labels` follow `ids`)."""

    labels: TermMatrix | None = None
    term_aspect: Any = None  # aspect of each labels.terms column (neural heads need it)

    def take(self, rows: Sequence[int] | np.ndarray) -> TrainSet:
        rows = np.asarray(rows, dtype=np.int64)
        labels = (
            None
            if self.labels is None
            else TermMatrix([self.labels.proteins[i] for i in rows], self.labels.terms, self.labels.matrix[rows])
        )
        return TrainSet(**self._taken(rows), labels=labels, term_aspect=self.term_aspect)

    @classmethod
    def from_labels(
        cls, labels: TermMatrix, embeddings: Any = None, fasta: str | os.PathLike | None = None
    ) -> TrainSet:
        return cls(ids=labels.proteins, embeddings=embeddings, fasta=fasta, labels=labels)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.labels is None:
            raise InputError("a training set needs labels (a TermMatrix of propagated annotations).")
        if self.labels.proteins != self.ids:
            self.labels = self.labels.reindex(proteins=self.ids)


class Predictor(ABC):
    """Base class of every predictor; `kind` is its registry name."""

    kind: ClassVar[str] = "predictor"
    # which labels it learns from: "all" terms the training proteins carry (transfer), or the prepared
    # "vocabulary" (terms with >= prepare.min_count proteins: one output per term, e.g. neural heads)
    label_terms: ClassVar[str] = "all"
    embed: Any = None  # EmbedSettings the predictor was fitted on, when it uses embeddings
    params_block: ClassVar[str] = ""  # its params.yaml block, when not named like its kind
    # predict() takes a ProteinSet whose embeddings may still be a Future (`ProteinSet.resolved`): the ensemble,
    # which waits for them only in the members that read vectors; every other predictor gets them resolved
    takes_pending_inputs: ClassVar[bool] = False

    @classmethod
    def from_params(cls, block: Block, ontology: Ontology, **named: Any) -> Predictor:
        """An unfitted predictor configured from its own params.yaml block, plus what `needs` reads of other
        blocks and what the caller passes (combining predictors: `members`, `ia`), each named. Every registered
        kind defines it (`registry.build` calls it); a predictor made only in code need not."""
        raise NotImplementedError(f"{cls.__name__} is not configured from params.yaml (no from_params)")

    @classmethod
    def needs(cls, params: Params) -> dict[str, Any]:
        """What `from_params` takes besides its own block, read from other blocks (default: nothing)."""
        return {}

    @classmethod
    def unavailable(cls, params: Params) -> str | None:
        """Why this kind cannot run here (an optional database or tool missing), None when it can (the default)."""
        return None

    def inputs(self) -> set[str]:
        """What this predictor needs per protein: a subset of {embedding, chunks, sequence}."""
        return set()

    @abstractmethod
    def fit(self, train: TrainSet) -> Predictor:
        """Learn from training proteins; returns self."""

    @abstractmethod
    def predict(self, proteins: ProteinSet) -> TermMatrix:
        """Scores in [0, 1]: proteins (in `proteins.ids` order) x the predictor's term vocabulary."""

    @abstractmethod
    def save_files(self, folder: Path) -> None:
        """Write the fitted state into `folder` (called by `save`)."""

    @classmethod
    @abstractmethod
    def load_files(cls, folder: Path) -> Predictor:
        """A fitted predictor from `save_files`' output."""

    def save(self, folder: str | os.PathLike) -> Path:
        """The fitted state plus predictor.json (kind and embedding settings)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.save_files(folder)
        meta = {
            "kind": self.kind,
            "inputs": sorted(self.inputs()),
            "embed": self.embed.to_dict() if self.embed else None,
        }
        write_json(folder / META_FILE, meta)
        seal(folder)  # every file's checksum: `load` refuses damaged or missing files
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, **options: Any) -> Predictor:
        """The predictor saved in `folder`, of the kind its predictor.json names (options go to load_files)."""
        from cafa_mlflow.embed.settings import EmbedSettings
        from cafa_mlflow.predictors.registry import predictor_class

        integrity.verify_folder(
            folder,
            f"the saved model in {folder} is incomplete or damaged: save it again (re-run the step that wrote it)",
        )
        meta = read_meta(folder)
        target = predictor_class(meta["kind"])
        if not issubclass(target, cls):
            raise InputError(f"{folder}: holds a {meta['kind']} predictor, not a {cls.kind} one.")
        predictor = target.load_files(Path(folder), **options)
        predictor.embed = EmbedSettings.from_dict(meta["embed"]) if meta.get("embed") else None
        return predictor

    def embedding_dim(self) -> int | None:
        """Width of the embeddings it reads (None: it reads none)."""
        return None

    def set_threads(self, threads: int) -> None:  # noqa: B027  (optional hook: most predictors run no tool)
        """CPU threads for external tools (DIAMOND); 0 = all cores."""

    def set_query_set(  # noqa: B027  (optional hook)
        self, ids: Sequence[str], sequences: Sequence[str], accessions: Sequence[str | None] | None = None
    ) -> None:
        """The whole input that the next predict() calls are batches of (the FASTA `cafa predict` scores, in
        batches, shards or Ray actors). A leakage rule about "the other queries" (reference.exclude: queries) then
        covers all of it, so a protein's scores do not depend on how the input was split. `accessions`: the UniProt
        accession a CAFA target header gives for each id (None where none), for rules about a query's own entry."""

    def prepare_loading(self) -> None:  # noqa: B027  (optional hook: most predictors load what they save)
        """Build now, where a saved copy of this fitted predictor builds it when loaded (homology: its MMseqs2
        index in the user cache), so that the chain builds it once and its own predictions use it too."""

    def evidence(self, protein: str, terms: Sequence[str], top: int = 3) -> dict[str, list[dict]] | None:
        """Why the last predict() scored `terms` for `protein`: per term, at most `top` training proteins that
        carried it, best first, each a dict with `member` (this predictor's kind), `protein` and what the
        predictor measured (identity/evalue/bitscore for homology, similarity for knn). Read from what that
        predict() computed, never recomputed; None: this predictor transfers from no training protein."""
        return None

    def term_features(self) -> HitFeatures | None:
        """Per (protein, term) statistics of what the last predict() scored from (a search member: its hits carrying
        each term, predictors/hit_features.py), for a learned ensemble; None: this predictor has none (default)."""
        return None

    def last_member_scores(self) -> dict[str, TermMatrix] | None:
        """Each member's scores from the last predict() of a combining predictor (None for a single member)."""
        return None

    def _require_fitted(self, attr: str) -> None:
        if getattr(self, attr, None) is None:
            raise NotFittedError(f"{type(self).__name__}.predict")


def read_meta(folder: str | os.PathLike) -> dict:
    """predictor.json of a saved predictor (InputError when the folder holds none)."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise MissingWeightsError(
            f"{folder}: no {META_FILE}; this is not a saved predictor folder (fit and save one first)."
        )
    return read_json(path)


def as_ids(proteins: ProteinSet | Sequence[str]) -> list[str]:
    """Ids of a ProteinSet or a plain sequence of ids."""
    return proteins.ids if isinstance(proteins, ProteinSet) else list(proteins)


def term_aspects(terms: Sequence[str], aspect_of: Any) -> np.ndarray:
    """Aspect of each term from an Ontology (its `index`/`aspect`) or a {term: aspect} mapping.

    Unknown terms raise InputError (they do not belong to the ontology the labels were built on)."""
    if hasattr(aspect_of, "index") and hasattr(aspect_of, "aspect"):
        index, aspects = aspect_of.index, aspect_of.aspect
        lookup = {t: aspects[index[t]] for t in terms if t in index}
    else:
        lookup = dict(aspect_of)
    missing = [t for t in terms if t not in lookup]
    if missing:
        raise InputError(
            f"{len(missing)} terms have no aspect in the ontology, e.g. {', '.join(missing[:5])}; "
            "build labels and predictions over the same OBO file."
        )
    return np.array([lookup[t] for t in terms], dtype=object)
