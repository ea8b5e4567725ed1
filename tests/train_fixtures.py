"""A tiny CAFA world for the train pipeline test: OBO, FASTA, terms -> prepared folder + embedding caches.

Each protein belongs to one of 4 classes; a class fixes its leaf GO terms (one per aspect) and its
embeddings are the class centroid plus noise, so a classifier can learn it in a couple of epochs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from cafa_mlflow.data.prepared import prepare_dataset
from cafa_mlflow.embed.cache import IDS_FILE, finalize, shard_name, write_shard

ROOTS = {"biological_process": "GO:0008150", "cellular_component": "GO:0005575", "molecular_function": "GO:0003674"}
LETTER = {"biological_process": "P", "cellular_component": "C", "molecular_function": "F"}
N_CLASSES, DIM = 4, 16


def _leaf(ns_index: int, k: int) -> str:
    return f"GO:{9000000 + 100 * ns_index + k:07d}"


def write_obo(path: Path) -> None:
    stanzas = ["format-version: 1.2\n"]
    for i, (ns, root) in enumerate(ROOTS.items()):
        stanzas.append(f"[Term]\nid: {root}\nname: {ns}\nnamespace: {ns}\n")
        for k in range(N_CLASSES):
            stanzas.append(f"[Term]\nid: {_leaf(i, k)}\nname: {ns} {k}\nnamespace: {ns}\nis_a: {root}\n")
    path.write_text("\n".join(stanzas))


def _world(n: int, seed: int, prefix: str) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"{prefix}{i:03d}" for i in range(n)], rng.integers(0, N_CLASSES, size=n)


def _write_raw(folder: Path, ids: list[str], classes: np.ndarray, stem: str) -> tuple[Path, Path]:
    rng = np.random.default_rng(len(ids))
    fasta = folder / f"{stem}.fasta"
    fasta.write_text("".join(f">{pid}\n{''.join(rng.choice(list('ACDEFGHIKLMNPQRSTVWY'), 30))}\n" for pid in ids))
    rows = ["EntryID\tterm\taspect"]
    for pid, c in zip(ids, classes):
        rows += [f"{pid}\t{_leaf(i, int(c))}\t{LETTER[ns]}" for i, ns in enumerate(ROOTS)]
    terms = folder / f"{stem}_terms.tsv"
    terms.write_text("\n".join(rows) + "\n")
    return fasta, terms


def write_cache(folder: Path, ids: list[str], classes: np.ndarray, seed: int) -> Path:
    """An embedding cache in the embed step's format: class centroid + noise, float16."""
    centroids = np.random.default_rng(123).standard_normal((N_CLASSES, DIM))
    x = centroids[classes] + 0.3 * np.random.default_rng(seed).standard_normal((len(ids), DIM))
    folder.mkdir(parents=True, exist_ok=True)
    write_shard(folder / shard_name(0), x)
    manifest = {
        "dim": DIM,
        "layer": 2,
        "n_vectors": len(ids),
        "ragged": False,
        "shards": [{"file": shard_name(0), "proteins": [0, len(ids)], "rows": len(ids)}],
    }
    finalize(folder, ids, None, manifest)
    assert (folder / IDS_FILE).is_file()
    return folder


def make_world(root: Path, n_train: int = 80, n_test: int = 24) -> Path:
    """Raw files, prepared folder, embedding caches and a params override file; returns that file."""
    raw = root / "raw"
    raw.mkdir(parents=True)
    write_obo(raw / "go.obo")
    train_ids, train_cls = _world(n_train, 0, "P")
    test_ids, test_cls = _world(n_test, 1, "T")
    train_fasta, train_terms = _write_raw(raw, train_ids, train_cls, "train")
    test_fasta, test_terms = _write_raw(raw, test_ids, test_cls, "test")
    data = {
        "obo": str(raw / "go.obo"),
        "train_fasta": str(train_fasta),
        "train_terms": str(train_terms),
        "train_taxonomy": None,
        "test_fasta": str(test_fasta),
        "test_terms": str(test_terms),
        "ia": None,
    }
    prep = {
        "out": str(root / "prepared"),
        "subsample": 0,
        "test_subsample": 0,
        "min_count": 2,
        "top_k": 0,
        "val_fraction": 0.25,
        "split": "random",
        "split_min_identity": 40,
        "split_max_evalue": 0.001,
        "seed": 0,
    }
    prepare_dataset(data, prep, prep["out"])
    emb = root / "embeddings"
    pool_ids = [
        line.split()[0][1:]
        for line in (root / "prepared" / "train.fasta").read_text().splitlines()
        if line.startswith(">")
    ]
    pool_cls = np.asarray([train_cls[train_ids.index(pid)] for pid in pool_ids])
    index = {
        "train": str(write_cache(emb / "train", pool_ids, pool_cls, 1)),
        "test": str(write_cache(emb / "test", test_ids, test_cls, 2)),
    }
    (emb / "index.json").write_text(json.dumps(index))
    overrides = {
        "data": data,
        "prepare": prep,
        "embed": {"out": str(emb)},
        "tracking": {"system_metrics": False, "registered_model": "cafa-go-test"},
        "outputs": {"predictions": str(root / "predictions")},
        "train": {
            "hidden_dim": 32,
            "batch_size": 16,
            "inference_batch_size": 64,
            "early_stopping_patience": 0,
            "dropout": 0.0,
            "lr": 0.01,
        },
    }
    path = root / "overrides.yaml"
    path.write_text(yaml.safe_dump(overrides))
    return path


@pytest.fixture
def world(tmp_path, monkeypatch):
    """make_world in tmp_path with its own SQLite tracking store; returns (root, overrides file)."""
    overrides = make_world(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)  # artifacts (./mlruns) stay in the temp folder
    return tmp_path, overrides
