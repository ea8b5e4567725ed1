"""naive, knn and homology predictors on tiny data with hand-computed answers; save/load round trips."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from predictor_fixtures import TERMS, labels, tiny_ontology, write_fasta

from cafa_mlflow.data.diamond import build_db, diamond_binary
from cafa_mlflow.errors import MissingToolError
from cafa_mlflow.predictors.base import Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.homology import HomologyPredictor, hits_to_scores
from cafa_mlflow.predictors.knn import KnnPredictor, knn_scores
from cafa_mlflow.predictors.naive import NaivePredictor

HAS_DIAMOND = shutil.which("diamond") is not None
BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS


def dense(tm, terms=TERMS):
    return tm.reindex(terms=terms).matrix.toarray()


@pytest.fixture
def four(tmp_path):
    """A: BP1; B: BP2 + MF4; C: CC3; D: BP root only (all propagated)."""
    return labels(["A", "B", "C", "D"], [[BP, BP1], [BP, BP1, BP2, MF, MF4], [CC, CC3], [BP]])


def test_naive_frequencies_per_aspect_and_overall(tmp_path, four):
    onto = tiny_ontology(tmp_path)
    pred = NaivePredictor(onto).fit(TrainSet.from_labels(four)).predict(["q1", "q2"])
    # BPO is annotated on A, B, D (3); CCO on C (1); MFO on B (1)
    expected = np.array([1, 2 / 3, 1 / 3, 1, 1, 1, 1, 0], np.float32)
    np.testing.assert_allclose(dense(pred), [expected, expected], rtol=1e-6)
    overall = NaivePredictor(denominator="all").fit(TrainSet.from_labels(four)).predict(["q"])
    np.testing.assert_allclose(dense(overall)[0], [3 / 4, 2 / 4, 1 / 4, 1 / 4, 1 / 4, 1 / 4, 1 / 4, 0], rtol=1e-6)


def test_naive_top_k_and_save_load(tmp_path, four):
    onto = tiny_ontology(tmp_path)
    fitted = NaivePredictor(onto, top_k=2).fit(TrainSet.from_labels(four))
    kept = dense(fitted.predict(["q"]))[0]
    assert np.count_nonzero(kept) == 2 and kept[0] == 1.0  # two of the 1.0 terms, earliest columns first
    loaded = Predictor.load(fitted.save(tmp_path / "naive"))
    assert loaded.inputs() == set() and loaded.kind == "naive"
    np.testing.assert_array_equal(dense(loaded.predict(["x", "y"])), dense(fitted.predict(["x", "y"])))


TRAIN_EMB = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], np.float32)  # A, B, C (unit vectors)


def test_knn_similarity_weighted_vote(four):
    train = TrainSet.from_labels(four.reindex(proteins=["A", "B", "C"]), embeddings=TRAIN_EMB)
    knn = KnnPredictor(k=2).fit(train)
    # q = (0.8, 0.6): cos A 0.8, B 0.96, C 0.6 -> neighbours B, A with weights 0.96 / 1.76 and 0.8 / 1.76
    got = dense(knn.predict(ProteinSet(["q"], embeddings=np.array([[8.0, 6.0]], np.float32))))[0]
    wb = 0.96 / 1.76
    np.testing.assert_allclose(got, [1, 1, wb, 0, 0, wb, wb, 0], rtol=1e-5)
    # only negative / zero similarities: no vote at all
    none = knn.predict(ProteinSet(["n"], embeddings=np.array([[-1.0, 0.0]], np.float32)))
    assert none.matrix.nnz == 0


def test_knn_excludes_self_and_round_trips(tmp_path, four):
    train = TrainSet.from_labels(four.reindex(proteins=["A", "B", "C"]), embeddings=TRAIN_EMB)
    knn = KnnPredictor(k=1).fit(train)
    got = dense(knn.predict(ProteinSet(["A"], embeddings=TRAIN_EMB[:1])))[0]
    np.testing.assert_allclose(got, dense(four.reindex(proteins=["B"]))[0])  # nearest other protein is B
    folder = knn.save(tmp_path / "knn")
    assert Predictor.load(folder).inputs() == {"embedding"}
    again = Predictor.load(folder).predict(ProteinSet(["A"], embeddings=TRAIN_EMB[:1]))
    np.testing.assert_array_equal(dense(again), got[None, :])


def test_knn_blocked_equals_unblocked():
    rng = np.random.default_rng(0)
    train, queries = rng.standard_normal((40, 8)), rng.standard_normal((33, 8)).astype(np.float16)
    y = (rng.random((40, 12)) < 0.3).astype(np.float32)
    ids = [f"t{i}" for i in range(40)]
    qids = ids[:5] + [f"q{i}" for i in range(28)]  # five queries are training proteins (self excluded)
    whole = knn_scores(queries, train, y, k=5, block_size=1000, query_ids=qids, train_ids=ids).toarray()
    blocked = knn_scores(queries, train, y, k=5, block_size=7, query_ids=qids, train_ids=ids).toarray()
    np.testing.assert_allclose(blocked, whole, rtol=1e-6, atol=1e-7)
    assert whole.max() <= 1.0 + 1e-6 and np.count_nonzero(whole) > 0


def test_knn_neighbours_hold_only_k_per_query():
    """The kept neighbours (evidence) are queries x k, not views into each block's queries x n_train index array:
    a view kept 300 MB per block alive at Kaggle's size and ran the knn step out of memory."""
    rng = np.random.default_rng(0)
    train, queries = rng.standard_normal((500, 8)), rng.standard_normal((40, 8))
    kept: list = []
    knn_scores(queries, train, (rng.random((500, 6)) < 0.3), k=3, block_size=16, neighbours=kept)
    assert len(kept) == 3
    for top, w in kept:
        assert top.shape[1] == 3 and w.shape == top.shape
        assert top.base is None or top.base.size == top.size  # owns its k columns, not the block x n_train array


def test_hits_to_scores_bitscore_vote(four):
    hits = pd.DataFrame(
        {
            "qseqid": ["q", "q", "q", "A", "A"],
            "sseqid": ["A", "B", "X", "A", "C"],
            "bitscore": [50.0, 30.0, 20.0, 99.0, 10.0],
        }
    )
    got = hits_to_scores(hits, ["q", "A", "none"], four, exclude_self=True)
    m = dense(got)
    # q: A 50 (BP, BP1), B 30 (BP, BP1, BP2, MF, MF4), X 20 (no labels, still in the denominator)
    np.testing.assert_allclose(m[0], [0.8, 0.8, 0.3, 0, 0, 0.3, 0.3, 0], rtol=1e-6)
    np.testing.assert_allclose(m[1], [0, 0, 0, 1, 1, 0, 0, 0])  # self-hit A dropped: C alone votes
    assert not m[2].any()
    with_self = dense(hits_to_scores(hits, ["A"], four, exclude_self=False))[0]
    np.testing.assert_allclose(with_self, [99 / 109, 99 / 109, 0, 10 / 109, 10 / 109, 0, 0, 0], rtol=1e-6)


@pytest.mark.skipif(not HAS_DIAMOND, reason="diamond not installed")
def test_homology_with_diamond(tmp_path):
    fasta = write_fasta(tmp_path / "pool.fasta", ["HBA", "HBB", "LYZ", "UBQ"])
    y = labels(["HBA", "HBB", "LYZ"], [[BP, BP1], [BP, BP1, BP2], [MF, MF4]])
    cache = tmp_path / "db"
    predictor = HomologyPredictor(cache, evalue=1e-3, threads=1)
    predictor.fit(TrainSet(ids=["HBA", "HBB", "LYZ"], fasta=fasta, labels=y))  # UBQ is not in the database
    manifest = (predictor.db.parent / "manifest.json").read_text()
    assert '"n_sequences": 3' in manifest
    got = predictor.predict(ProteinSet(["HBA", "LYZ", "UBQ"], fasta=fasta))
    hits = predictor.hits
    m = dense(got)
    # HBA: its self-hit is excluded, HBB (the beta globin) is its only remaining hit -> HBB's terms score 1
    np.testing.assert_allclose(m[0], [1, 1, 1, 0, 0, 0, 0, 0])
    assert not m[1].any() and not m[2].any()  # LYZ only hits itself; UBQ hits nothing in the database
    kept = hits[(hits["qseqid"] == "HBA") & (hits["sseqid"] != "HBA")]
    assert list(kept["sseqid"]) == ["HBB"]
    # term features of the same hits: HBB (the one voting hit of HBA) carries exactly the terms HBA scores
    feats = predictor.term_features()
    assert feats.proteins == ["HBA", "LYZ", "UBQ"] and feats.terms == got.terms
    np.testing.assert_array_equal(feats.term["n_hits"].toarray() > 0, m > 0)
    np.testing.assert_allclose(feats.term["best_bits"].toarray()[0][m[0] > 0], kept["bitscore"].iloc[0])
    np.testing.assert_allclose(feats.protein["hits"], [1, 0, 0])
    nothing = predictor.predict(ProteinSet(["UBQ"], sequences=["MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGK"]))
    assert nothing.proteins == ["UBQ"] and nothing.matrix.nnz == 0  # a search without any hit: empty, no crash
    # without self exclusion: score = bitscore of hits carrying t / all hits' bitscore
    predictor.exclude_self = False
    raw = dense(predictor.predict(ProteinSet(["HBA"], fasta=fasta)))[0]
    bits = predictor.hits.set_index("sseqid")["bitscore"]
    np.testing.assert_allclose(raw[2], bits["HBB"] / bits.sum(), rtol=1e-6)  # BP2 only on HBB
    np.testing.assert_allclose(raw[1], 1.0, rtol=1e-6)
    # cached database is reused, and a saved folder predicts the same
    stamp = predictor.db.stat().st_mtime_ns
    assert build_db(fasta, cache, ["HBA", "HBB", "LYZ"], 1) == predictor.db and predictor.db.stat().st_mtime_ns == stamp
    predictor.exclude_self = True
    loaded = Predictor.load(predictor.save(tmp_path / "model"), threads=1)
    seqs = [line for line in fasta.read_text().splitlines() if not line.startswith(">")]
    again = loaded.predict(ProteinSet(["HBA"], sequences=[seqs[0]]))
    np.testing.assert_allclose(dense(again)[0], m[0])


def test_missing_diamond_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match="apt-get install diamond-aligner"):
        diamond_binary()
    y = labels(["HBA"], [[BP]])
    with pytest.raises(MissingToolError, match="bioconda diamond"):
        HomologyPredictor(tmp_path / "db").fit(
            TrainSet(ids=["HBA"], fasta=write_fasta(tmp_path / "p.fa", ["HBA"]), labels=y)
        )
