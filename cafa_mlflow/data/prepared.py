"""The `prepare` step: raw CAFA files -> a prepared dataset folder every later step reads.

Folder layout (a DVC output):
  proteins.parquet   protein, split (train|val), cluster, taxon, length   (the training pool, row order = labels)
  labels.npz         propagated 0/1 labels, proteins x vocabulary (scipy.sparse CSR)
  terms.tsv          vocabulary: term, aspect, count, ia
  ia.tsv             information accretion of every ontology term (two columns, no header)
  train.fasta        sequences of the training pool (train + val)
  val_terms.tsv      ground truth of the validation proteins (Kaggle's terms format, unpropagated)
  test.fasta         query sequences; test_terms.tsv their ground truth when given
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.model_selection import GroupShuffleSplit

from cafa_mlflow.errors import InputError
from cafa_mlflow.go.annotations import resolve_terms
from cafa_mlflow.go.labels import TermMatrix, label_matrix, select_terms
from cafa_mlflow.go.ontology import LETTER_OF_ASPECT, Ontology, load_obo
from cafa_mlflow.io import integrity
from cafa_mlflow.io.readback import load_npz, read_parquet, reading
from cafa_mlflow.io.fasta import FastaRecord, load_fasta, read_fasta, write_fasta
from cafa_mlflow.io.ia import read_ia, write_ia
from cafa_mlflow.io.outputs import check_replaceable
from cafa_mlflow.io.taxonomy import read_taxonomy
from cafa_mlflow.io.terms import read_terms
from cafa_mlflow.io.text import atomic_dir

log = logging.getLogger(__name__)
# DIAMOND mode of the clustering search: the one prepare.split_min_identity was chosen with (benchmarks/RESULTS.md,
# "Fold split candidates"); homology.sensitivity, which the member searches with, may differ.
SPLIT_SENSITIVITY = "sensitive"
ALL_LABELS, ALL_TERMS = "labels_all.npz", "terms_all.tsv"  # every carried term (transfer members)


@dataclass
class Prepared:
    """A prepared dataset folder, loaded."""

    root: Path
    proteins: pd.DataFrame
    labels: TermMatrix
    term_aspect: np.ndarray
    ia: dict[str, float]
    _read: dict = field(default_factory=dict, repr=False, compare=False)  # FASTA path -> {id: sequence}

    @property
    def split_id(self) -> str:
        """Short hash of the validation proteins: runs are comparable only on the same split."""
        val = sorted(self.proteins.loc[self.proteins["split"] == "val", "protein"])
        return hashlib.sha256("\n".join(val).encode()).hexdigest()[:12]

    def ids(self, split: str) -> list[str]:
        """Protein ids of a split: train and val from the pool (`pool` = both), test from the test FASTA."""
        if split == "test":
            return list(self._test_ids)
        return self.proteins["protein"].to_numpy()[self.rows(split)].tolist()

    @functools.cached_property
    def _test_ids(self) -> tuple[str, ...]:  # read once: every step asks for them several times
        return tuple(r.id for r in read_fasta(self.test_fasta)) if self.test_fasta.exists() else ()

    def fasta(self, split: str) -> Path:
        """The FASTA holding a split's sequences (train and val share the pool's)."""
        return self.test_fasta if split == "test" else self.train_fasta

    def sequences(self, split: str, ids: list[str]) -> list[str]:
        """The sequences of `ids` of a split, in order (each FASTA read once per Prepared)."""
        by_id = self._sequences(self.fasta(split))
        return [by_id[i] for i in ids]

    def _sequences(self, fasta: Path) -> dict[str, str]:
        if fasta not in self._read:
            self._read[fasta] = {r.id: r.sequence for r in load_fasta(fasta)}
        return self._read[fasta]

    @staticmethod
    def role(split: str) -> str:
        """The embedding cache a split's vectors live in: `test`, or `train` for the pool's splits."""
        return "test" if split == "test" else "train"

    def rows(self, split: str) -> np.ndarray:
        """Label rows of `train`, `val` or `pool` (both)."""
        if split == "pool":
            return np.arange(len(self.proteins))
        return np.flatnonzero(self.proteins["split"].to_numpy() == split)

    def folds(self, k: int, seed: int) -> np.ndarray:
        """Cross-fitting fold (0..k-1) of each `train` protein: whole prepare clusters per fold, so a fold's
        proteins have no hit >= prepare.split_min_identity in the other folds (homology split)."""
        from cafa_mlflow.data.folds import assign_folds

        if "cluster" not in self.proteins:
            raise InputError(f"{self.root}: prepared by an older version (no clusters); run `cafa prepare` again.")
        return assign_folds(self.proteins["cluster"].to_numpy()[self.rows("train")], k, seed)

    def split_labels(self, split: str, all_terms: bool = False) -> TermMatrix:
        """Propagated labels of a split over the vocabulary (terms with >= prepare.min_count proteins), or
        over every term a training protein carries (`all_terms`: what transfer members vote with)."""
        labels = self.all_labels() if all_terms else self.labels
        rows = self.rows(split)
        return TermMatrix([labels.proteins[i] for i in rows], labels.terms, labels.matrix[rows])

    def all_labels(self) -> TermMatrix:
        """Propagated labels over every term a training protein carries (read once per process)."""
        return self._all_labels

    @functools.cached_property
    def _all_labels(self) -> TermMatrix:
        if not (self.root / ALL_LABELS).is_file():
            raise InputError(f"{self.root}: no {ALL_LABELS} (prepared by an older version); run `cafa prepare` again.")
        fix = f"run `cafa prepare` again (it rewrites {self.root})"
        with reading(self.root / ALL_TERMS, fix) as path:
            terms = pd.read_csv(path, sep="\t")
        matrix = load_npz(self.root / ALL_LABELS, fix)
        return TermMatrix(self.labels.proteins, terms["term"].tolist(), matrix)

    def term_aspects(self, terms: list[str]) -> np.ndarray:
        """Aspect of each term of the vocabulary or of every carried term, in `terms` order."""
        return np.array([self._aspect_of[t] for t in terms], dtype=object)

    @functools.cached_property
    def _aspect_of(self) -> dict[str, str]:
        lookup = dict(zip(self.labels.terms, self.term_aspect))
        if (self.root / ALL_TERMS).is_file():
            table = pd.read_csv(self.root / ALL_TERMS, sep="\t")
            lookup.update(zip(table["term"], table["aspect"]))
        return lookup

    @property
    def train_fasta(self) -> Path:
        return self.root / "train.fasta"

    @property
    def test_fasta(self) -> Path:
        return self.root / "test.fasta"

    def truth_file(self, split: str) -> Path | None:
        """Unpropagated ground truth of the val or test proteins (None when the test set has none)."""
        path = self.root / f"{split}_terms.tsv"
        return path if path.exists() else None


def load_prepared(root: str | os.PathLike) -> Prepared:
    root = Path(root)
    if not (root / "labels.npz").exists():
        raise InputError(f"{root}: no prepared dataset here; run `cafa prepare` (or `dvc repro prepare`) first.")
    fix = f"run `cafa prepare` again (it rewrites {root})"
    integrity.verify_folder(root, fix)
    proteins = read_parquet(root / "proteins.parquet", fix)
    with reading(root / "terms.tsv", fix) as path:
        vocab = pd.read_csv(path, sep="\t")
    matrix = load_npz(root / "labels.npz", fix)
    labels = TermMatrix(proteins["protein"].tolist(), vocab["term"].tolist(), matrix)
    return Prepared(root, proteins, labels, vocab["aspect"].to_numpy(dtype=object), read_ia(root / "ia.tsv"))


def pool_split(records: list[FastaRecord], prep: dict) -> tuple[np.ndarray, np.ndarray]:
    """The train/val split prepare.split asks for, `homology` (no close homolog across it) or `random`,
    and the cluster of each protein (whole clusters stay on one side of any split: val, cross-fitting folds)."""
    if prep["split"] == "homology":
        return homology_val_split(
            records,
            float(prep["val_fraction"]),
            int(prep["seed"]),
            float(prep["split_min_identity"]),
            float(prep["split_max_evalue"]),
        )
    return split_pool(records, float(prep["val_fraction"]), int(prep["seed"]))


def split_pool(records: list[FastaRecord], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """'train'/'val' per protein; identical sequences share a group (cluster) so they never straddle the split."""
    split = np.full(len(records), "train", dtype=object)
    groups = pd.factorize(pd.Series([r.sequence for r in records]))[0]
    if val_fraction <= 0 or len(records) < 2:
        return split, groups
    if groups.max() < 1:  # one distinct sequence: no split possible (sklearn would raise)
        log.warning("all %d training proteins share one sequence; no validation split", len(records))
        return split, groups
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    _, val_idx = next(splitter.split(np.zeros(len(records)), groups=groups))
    split[val_idx] = "val"
    return split, groups


def homology_val_split(
    records: list[FastaRecord], val_fraction: float, seed: int, min_identity: float, max_evalue: float
) -> tuple[np.ndarray, np.ndarray]:
    """'train'/'val' per protein with no close homolog across the split: proteins joined by a DIAMOND hit
    with identity >= `min_identity` % (one all-vs-all search of the pool) form one cluster, and whole
    clusters go to K = round(1 / val_fraction) balanced folds; the fold of most clusters is validation. Validation then
    sees the novelty the test set has (a random split leaves close homologs in training and flatters
    homology transfer: benchmarks/RESULTS.md, "Fold split candidates")."""
    from cafa_mlflow.data.diamond import build_db, search
    from cafa_mlflow.data.folds import assign_folds, hit_clusters

    split = np.full(len(records), "train", dtype=object)
    if len(records) < 2:
        return split, np.zeros(len(records), dtype=np.int64)
    ids = [r.id for r in records]
    threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="cafa-split-") as tmp:
        fasta = Path(tmp) / "pool.fasta"
        write_fasta(fasta, ((r.id, r.sequence) for r in records))
        hits = search(
            build_db(fasta, Path(tmp) / "db", threads=threads), fasta, None, SPLIT_SENSITIVITY, max_evalue, 0, threads
        )
    clusters = hit_clusters(hits, ids, min_identity, max_evalue)
    if val_fraction <= 0:
        return split, clusters
    folds = assign_folds(clusters, max(2, round(1 / val_fraction)), seed)
    # validation = the fold of most clusters: never a fold that one big protein family fills on its own
    diversity = [len(np.unique(clusters[folds == f])) for f in range(folds.max() + 1)]
    split[folds == int(np.argmax(diversity))] = "val"
    return split, clusters


def _subsample(records: list, n: int, seed: int) -> list:
    if not n or n >= len(records):
        return records
    keep = np.sort(np.random.default_rng(seed).choice(len(records), size=n, replace=False))
    return [records[i] for i in keep]


def _annotated_records(data: dict, ontology: Ontology) -> tuple[pd.DataFrame, list]:
    """(annotations on live terms, the training FASTA's records that have one); InputError when none has."""
    annotations = resolve_terms(read_terms(data["train_terms"]), ontology, str(data["train_terms"]))
    annotated = set(annotations["protein"])
    records = [r for r in load_fasta(data["train_fasta"]) if r.id in annotated]
    if not records:
        raise InputError(
            f"{data['train_fasta']}: none of its proteins has an annotation in {data['train_terms']}; "
            "check that both files come from the same release."
        )
    missing = len(annotated) - len(records)
    if missing:
        log.warning("%d annotated proteins have no sequence in %s and are left out", missing, data["train_fasta"])
    return annotations, records


def _vocabulary(full: TermMatrix, ontology: Ontology, ia: dict, prep: dict) -> tuple[np.ndarray, pd.DataFrame]:
    """The columns kept as the learned vocabulary (prepare.min_count, top_k) and its table (term, aspect,
    count, ia)."""
    keep = select_terms(full, ontology.aspect, int(prep["min_count"]), int(prep["top_k"]))
    vocab = pd.DataFrame(
        {
            "term": [ontology.terms[j] for j in keep],
            "aspect": ontology.aspect[keep],
            "count": np.asarray(full.matrix[:, keep].sum(axis=0)).ravel().astype(int),
        }
    )
    vocab["ia"] = vocab["term"].map(ia).fillna(0.0)
    return keep, vocab


def prepare_dataset(data: dict, prep: dict, out_dir: str | os.PathLike) -> dict:
    """Read the raw files named in params' `data` block and write the prepared folder atomically.
    Returns a summary dict (counts) for logging."""
    from cafa_mlflow.go.information_accretion import compute_ia  # noqa: PLC0415  (module owned by the IA step)

    check_replaceable(out_dir)  # before any work: never replace a folder the product did not make
    ontology = load_obo(data["obo"])
    annotations, records = _annotated_records(data, ontology)
    records = _subsample(records, int(prep["subsample"]), int(prep["seed"]))
    ids = [r.id for r in records]
    full = label_matrix(annotations[annotations["protein"].isin(set(ids))], ontology, ids)
    ia = read_ia(data["ia"]) if data.get("ia") else compute_ia(full, ontology, propagated=True).to_dict()
    keep, vocab = _vocabulary(full, ontology, ia, prep)
    taxonomy = read_taxonomy(data["train_taxonomy"]) if data.get("train_taxonomy") else pd.Series(dtype=str)
    split, clusters = pool_split(records, prep)
    proteins = pd.DataFrame(
        {
            "protein": ids,
            "split": split,
            "cluster": clusters,
            "taxon": [taxonomy.get(r.id, r.taxon) for r in records],
            "length": [len(r.sequence) for r in records],
        }
    )
    with atomic_dir(out_dir) as tmp:
        proteins.to_parquet(tmp / "proteins.parquet", index=False)
        sp.save_npz(tmp / "labels.npz", full.matrix[:, keep].tocsr())
        carried = np.flatnonzero(full.matrix.getnnz(axis=0))  # every term a training protein carries
        sp.save_npz(tmp / ALL_LABELS, full.matrix[:, carried].tocsr())
        pd.DataFrame({"term": [ontology.terms[j] for j in carried], "aspect": ontology.aspect[carried]}).to_csv(
            tmp / ALL_TERMS, sep="\t", index=False
        )
        vocab.to_csv(tmp / "terms.tsv", sep="\t", index=False)
        write_ia(tmp / "ia.tsv", ia)
        write_fasta(tmp / "train.fasta", ((r.id, r.sequence) for r in records))
        val_ids = set(proteins.loc[proteins["split"] == "val", "protein"])
        _write_truth(annotations[annotations["protein"].isin(val_ids)], tmp / "val_terms.tsv", ontology)
        summary = {
            "n_train": int((proteins["split"] == "train").sum()),
            "n_val": int((proteins["split"] == "val").sum()),
            **{f"n_terms_{a}": int((vocab["aspect"] == a).sum()) for a in ontology.aspects},
        }
        if data.get("test_fasta"):
            summary.update(_prepare_test(data, prep, ontology, tmp))
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _prepare_test(data: dict, prep: dict, ontology: Ontology, out: Path) -> dict:
    records = _subsample(load_fasta(data["test_fasta"]), int(prep["test_subsample"]), int(prep["seed"]))
    write_fasta(out / "test.fasta", ((r.id, r.sequence) for r in records))
    summary = {"n_test": len(records)}
    if data.get("test_terms"):
        truth = resolve_terms(read_terms(data["test_terms"]), ontology, str(data["test_terms"]))
        truth = truth[truth["protein"].isin({r.id for r in records})]
        _write_truth(truth, out / "test_terms.tsv", ontology)
        summary["n_test_annotations"] = len(truth)
    return summary


def _write_truth(annotations: pd.DataFrame, path: Path, ontology: Ontology) -> None:
    """Ground truth in Kaggle's terms format (EntryID, term, aspect), unpropagated, ids resolved.
    The aspect letter comes from the ontology (GO), else the file's column, else the namespace."""
    aspect = ontology.aspect[pd.Index(ontology.terms).get_indexer(annotations["term"])]
    letters = pd.Series(aspect, index=annotations.index).map(LETTER_OF_ASPECT)
    letters = letters.fillna(annotations["aspect"]).fillna(pd.Series(aspect, index=annotations.index))
    table = pd.DataFrame({"EntryID": annotations["protein"], "term": annotations["term"], "aspect": letters})
    table.to_csv(path, sep="\t", index=False)
