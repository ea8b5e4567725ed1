"""Transfer over every label: per-aspect denominators, best hit per term, singleton terms transferred."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from predictor_fixtures import TERMS, labels, tiny_ontology, write_fasta

from cafa_mlflow.predictors.base import ProteinSet, TrainSet
from cafa_mlflow.predictors.homology import HomologyPredictor, hits_to_scores
from cafa_mlflow.predictors.knn import KnnPredictor
from cafa_mlflow.predictors.transfer import aspect_root_columns, best_hit_per_term, hit_matrix

BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS
HITS = pd.DataFrame(
    {
        "qseqid": ["q", "q", "q"],
        "sseqid": ["A", "B", "C"],
        "pident": [90.0, 40.0, 60.0],
        "evalue": [1e-50, 1e-5, 1e-20],
        "bitscore": [50.0, 30.0, 20.0],
    }
)


@pytest.fixture
def three():
    """A: BP1; B: BP2 + MF4 (MF4 carried by no other protein); C: CC3."""
    return labels(["A", "B", "C"], [[BP, BP1], [BP, BP1, BP2, MF, MF4], [CC, CC3]])


def test_per_aspect_denominator(tmp_path, three):
    onto = tiny_ontology(tmp_path)
    m = hits_to_scores(HITS, ["q"], three, aspect_of=onto).reindex(terms=TERMS).matrix.toarray()[0]
    # BPO: A and B are annotated there (80); CCO: only C (20); MFO: only B (30)
    np.testing.assert_allclose(m, [1, 1, 30 / 80, 1, 1, 1, 1, 0], rtol=1e-6)
    flat = hits_to_scores(HITS, ["q"], three).reindex(terms=TERMS).matrix.toarray()[0]
    np.testing.assert_allclose(flat, [0.8, 0.8, 0.3, 0.2, 0.2, 0.3, 0.3, 0], rtol=1e-6)
    roots = aspect_root_columns(TERMS, onto)
    assert roots.tolist() == [0, 0, 0, 3, 3, 5, 5, 5]


def test_best_hit_per_term(three):
    best_bits = best_hit_per_term(hit_matrix(HITS, ["q"], three.proteins, "bitscore"), three.matrix)
    np.testing.assert_allclose(best_bits.toarray()[0], [50, 50, 30, 20, 20, 30, 30, 0])
    best_ident = best_hit_per_term(hit_matrix(HITS, ["q"], three.proteins, "pident"), three.matrix)
    np.testing.assert_allclose(best_ident.toarray()[0], [90, 90, 40, 60, 60, 40, 40, 0])
    # values <= min_value do not count: only A (90) remains above 50
    strong = best_hit_per_term(sp.csr_matrix([[90.0, 40.0, 0.0]]), three.matrix, min_value=50.0)
    np.testing.assert_allclose(strong.toarray()[0], [90, 90, 0, 0, 0, 0, 0, 0])


@pytest.mark.skipif(shutil.which("diamond") is None, reason="diamond not installed")
def test_homology_transfers_a_term_of_one_training_protein(tmp_path):
    fasta = write_fasta(tmp_path / "pool.fasta", ["HBA", "HBB", "LYZ"])
    y = labels(["HBB", "LYZ"], [[BP, BP1, BP2, MF, MF4, MF5], [MF, MF4]])  # MF5 on HBB only
    onto = tiny_ontology(tmp_path)
    predictor = HomologyPredictor(tmp_path / "db", threads=1, max_target_seqs=0, aspect_of=onto)
    predictor.fit(TrainSet(ids=["HBB", "LYZ"], fasta=fasta, labels=y))
    got = predictor.predict(ProteinSet(["HBA"], fasta=fasta)).reindex(terms=TERMS).matrix.toarray()[0]
    assert got[TERMS.index(MF5)] == pytest.approx(1.0)  # the singleton term reaches HBA's prediction
    loaded = HomologyPredictor.load(predictor.save(tmp_path / "saved"), threads=1)
    np.testing.assert_array_equal(loaded.root_col, predictor.root_col)


def test_knn_per_aspect_denominator(tmp_path, three):
    onto = tiny_ontology(tmp_path)
    emb = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], np.float32)  # A, B, C
    knn = KnnPredictor(k=3, aspect_of=onto).fit(TrainSet.from_labels(three, embeddings=emb))
    got = knn.predict(ProteinSet(["q"], embeddings=np.array([[0.8, 0.6]], np.float32)))
    m = got.reindex(terms=TERMS).matrix.toarray()[0]
    # cos: A 0.8, B 0.96, C 0.6; BPO denominators A + B, CCO only C, MFO only B
    np.testing.assert_allclose(m, [1, 1, 0.96 / 1.76, 1, 1, 1, 1, 0], rtol=1e-5)
    again = KnnPredictor.load(knn.save(tmp_path / "knn"))
    np.testing.assert_array_equal(again.root_col, knn.root_col)


def test_vote_in_query_blocks_equals_the_whole(tmp_path):
    from cafa_mlflow.predictors.transfer import vote

    rng = np.random.default_rng(0)
    weights = sp.random(37, 11, density=0.4, random_state=1, format="csr") * 100
    carried = sp.csr_matrix((rng.random((11, len(TERMS))) < 0.4).astype(np.float32))
    roots = aspect_root_columns(TERMS, tiny_ontology(tmp_path))
    for root_col in (None, roots):
        whole = vote(weights, carried, root_col, block_rows=37)
        for block_rows in (1, 5, 36):
            blocked = vote(weights, carried, root_col, block_rows=block_rows)
            assert blocked.shape == whole.shape and blocked.dtype == whole.dtype == np.float32
            for name in ("data", "indices", "indptr"):
                assert np.array_equal(getattr(blocked, name), getattr(whole, name)), name
