"""`prepare` on a small subsample of data/sample: split, files, vocabulary, atomic replacement."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cafa_mlflow.data.prepared import load_prepared, prepare_dataset, split_pool
from cafa_mlflow.errors import InputError
from cafa_mlflow.io.fasta import FastaRecord, load_fasta
from cafa_mlflow.io.ia import read_ia
from tests.cafa_fixtures import OBO, TERMS_TSV, hand_made_data, snapshot, write

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
DATA = {
    "obo": SAMPLE / "go-basic.obo.xz",
    "train_fasta": SAMPLE / "train" / "train_sequences.fasta.xz",
    "train_terms": SAMPLE / "train" / "train_terms.tsv.xz",
    "train_taxonomy": SAMPLE / "train" / "train_taxonomy.tsv.xz",
    "test_fasta": SAMPLE / "test" / "test_sequences.fasta.xz",
    "test_terms": SAMPLE / "test" / "test_terms.tsv.xz",
    "ia": None,
}
PREP = {
    "subsample": 200,
    "test_subsample": 40,
    "min_count": 3,
    "top_k": 0,
    "val_fraction": 0.1,
    "split": "random",
    "split_min_identity": 40,
    "split_max_evalue": 0.001,
    "seed": 0,
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "prepared"
    summary = prepare_dataset(DATA, PREP, out)
    return out, summary


def test_files_and_split(prepared):
    out, summary = prepared
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "proteins.parquet",
            "labels.npz",
            "labels_all.npz",
            "terms.tsv",
            "terms_all.tsv",
            "ia.tsv",
            "train.fasta",
            "val_terms.tsv",
            "test.fasta",
            "test_terms.tsv",
            "summary.json",
            ".cafa-mlflow",  # the product's marker: a later prepare may replace this folder
            "checksums.json",  # every file's size and sha256, checked when it is read back
        ]
    )
    data = load_prepared(out)
    proteins = data.proteins
    assert len(proteins) == 200 and proteins["protein"].is_unique
    assert summary["n_train"] + summary["n_val"] == 200 and summary["n_val"] == len(data.ids("val"))
    assert 15 <= summary["n_val"] <= 25
    assert set(proteins["split"]) == {"train", "val"}
    assert set(proteins["taxon"]) <= {"3702", "7227", "10116", "6239", "7955"}
    train = load_fasta(data.train_fasta)
    assert [r.id for r in train] == proteins["protein"].tolist()
    assert [len(r.sequence) for r in train] == proteins["length"].tolist()
    assert len(data.split_id) == 12


def test_labels_vocabulary_ia(prepared):
    out, summary = prepared
    data = load_prepared(out)
    vocab = pd.read_csv(out / "terms.tsv", sep="\t")
    counts = np.asarray(data.labels.matrix.sum(axis=0)).ravel()
    assert counts.tolist() == vocab["count"].tolist() and counts.min() >= PREP["min_count"]
    assert set(vocab["aspect"]) == {"BPO", "CCO", "MFO"}
    assert {a: int((vocab["aspect"] == a).sum()) for a in ("BPO", "CCO", "MFO")} == {
        a: summary[f"n_terms_{a}"] for a in ("BPO", "CCO", "MFO")
    }
    assert {"GO:0008150", "GO:0005575", "GO:0003674"} <= set(vocab["term"])  # roots: propagated labels
    assert set(data.labels.matrix.data) == {1.0}
    ia = read_ia(out / "ia.tsv")
    assert len(ia) == 43_789 and ia["GO:0008150"] == 0.0
    assert vocab.set_index("term")["ia"].to_dict() == pytest.approx({t: ia[t] for t in vocab["term"]})
    val = data.split_labels("val")
    assert val.proteins == data.ids("val") and val.shape == (summary["n_val"], len(vocab))


def test_truth_files(prepared):
    out, summary = prepared
    data = load_prepared(out)
    val_truth = pd.read_csv(data.truth_file("val"), sep="\t")
    assert val_truth.columns.tolist() == ["EntryID", "term", "aspect"]
    assert set(val_truth["EntryID"]) == set(data.ids("val")) and set(val_truth["aspect"]) <= {"P", "C", "F"}
    test_ids = [r.id for r in load_fasta(data.test_fasta)]
    assert len(test_ids) == 40 == summary["n_test"]
    test_truth = pd.read_csv(data.truth_file("test"), sep="\t")
    assert set(test_truth["EntryID"]) <= set(test_ids) and len(test_truth) == summary["n_test_annotations"]


def test_failed_run_keeps_previous_outputs(prepared, tmp_path):
    out, _ = prepared
    before = snapshot(out)
    # a run that fails late (test FASTA, read while the new folder is being written); small inputs keep it fast
    small = hand_made_data(tmp_path, test_fasta=write(tmp_path / "bad_test.fasta", ">T1\nMKV\n>T2\nMK7V\n"))
    with pytest.raises(InputError, match=r"bad_test.fasta:4: protein 'T2' contains invalid characters '7'"):
        prepare_dataset(small, {**PREP, "min_count": 1}, out)
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["prepared"]  # no temporary folder left behind


def test_split_pool_identical_sequences():
    records = [FastaRecord(f"P{i}", seq, None) for i, seq in enumerate(["MKV", "MKV", "MKV", "MA", "MA", "MC"])]
    assert split_pool(records[:3], 0.5, 0)[0].tolist() == ["train"] * 3  # one distinct sequence: no split
    split, clusters = split_pool(records, 0.34, 0)
    split = split.tolist()
    assert split[0] == split[1] == split[2] and split[3] == split[4]  # identical sequences stay together
    assert clusters.tolist() == [0, 0, 0, 1, 1, 2]  # ... and form one cluster (whole clusters per fold)
    assert split.count("val") in (1, 2, 3) and "train" in split


def test_no_annotated_sequence(tmp_path):
    fasta = write(tmp_path / "other.fasta", ">NOT_ANNOTATED\nMKV\n")
    data = {
        "obo": write(tmp_path / "go.obo", OBO),
        "train_terms": write(tmp_path / "terms.tsv", TERMS_TSV),
        "train_fasta": fasta,
        "train_taxonomy": None,
        "test_fasta": None,
        "ia": None,
    }
    with pytest.raises(InputError, match=r"other.fasta: none of its proteins has an annotation"):
        prepare_dataset(data, PREP, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("diamond") is None, reason="needs DIAMOND (scripts/install.sh installs it)")
def test_homology_split_leaves_no_close_homolog_across_train_and_val(tmp_path):
    """No validation protein has a training-part DIAMOND hit at or above prepare.split_min_identity."""
    from cafa_mlflow.data.diamond import build_db, search
    from cafa_mlflow.data.folds import assign_folds
    from cafa_mlflow.data.prepared import homology_val_split
    from cafa_mlflow.io.fasta import write_fasta

    records = load_fasta(SAMPLE / "train" / "train_sequences.fasta.xz")[:1500]
    split, clusters = homology_val_split(records, 0.2, 0, 40.0, 1e-3)
    val = {r.id for r, s in zip(records, split) if s == "val"}
    assert 0.15 * len(records) < len(val) < 0.25 * len(records)  # balanced folds: about val_fraction
    fasta = tmp_path / "pool.fasta"
    write_fasta(fasta, ((r.id, r.sequence) for r in records))
    hits = search(build_db(fasta, tmp_path / "db"), fasta, None, "sensitive", 1e-3, 0, 2)
    across = hits[hits["qseqid"].isin(val) != hits["sseqid"].isin(val)]
    assert len(across) > 0 and (across["pident"] < 40.0).all()  # weaker hits may cross, close ones never
    # the cross-fitting folds of the train part (Prepared.folds) keep whole clusters too
    train = [i for i, s in enumerate(split) if s == "train"]
    folds = dict(zip((records[i].id for i in train), assign_folds(clusters[train], 5, 0)))
    pairs = hits[hits["qseqid"].isin(folds) & hits["sseqid"].isin(folds)]
    crossing = pairs[pairs["qseqid"].map(folds) != pairs["sseqid"].map(folds)]
    assert len(crossing) > 0 and (crossing["pident"] < 40.0).all()
    random, _ = split_pool(records, 0.2, 0)
    rand_val = {r.id for r, s in zip(records, random) if s == "val"}
    leaked = hits[(hits["qseqid"].isin(rand_val) != hits["sseqid"].isin(rand_val)) & (hits["pident"] >= 40.0)]
    assert len(leaked) > 0  # a random split does leave close homologs across (what the homology split fixes)
