"""Stacker: candidate pairs, GO-consistent output, save/load; the whole stack without kNN/neural members."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from predictor_fixtures import TERMS, tiny_ontology

from cafa_mlflow.folds import make_folds
from cafa_mlflow.labels import TermMatrix
from cafa_mlflow.stacker.features import candidates, gather
from cafa_mlflow.stacker.model import Stacker
from cafa_mlflow.stacker.stack import FittedStack, StackSettings, fit_stack

BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS
# leaf sets (propagated below); proteins of a family share them and hit each other
FAMILIES = [[BP2, CC3], [BP1, MF5], [MF4, CC3], [BP2, MF5]]


def pool(tmp_path, n: int = 120, seed: int = 0):
    onto = tiny_ontology(tmp_path)
    rng = np.random.default_rng(seed)
    ids = [f"p{i}" for i in range(n)]
    family = rng.integers(0, len(FAMILIES), n)
    raw = np.zeros((n, len(TERMS)), np.float32)
    for i, f in enumerate(family):
        for t in FAMILIES[f]:
            if rng.random() < 0.9:
                raw[i, TERMS.index(t)] = 1
    y = onto.propagate(sp.csr_matrix(raw))
    labels = TermMatrix(ids, TERMS, y)  # TERMS are the ontology's terms, in order
    rows = []
    for i in range(n):
        for j in rng.choice(np.flatnonzero(family == family[i]), 6):
            if i != j:
                rows.append((ids[i], ids[j], rng.uniform(25, 95), 10.0 ** -rng.uniform(5, 80), rng.uniform(40, 400)))
    hits = pd.DataFrame(rows, columns=["qseqid", "sseqid", "pident", "evalue", "bitscore"])
    return onto, labels, hits


def test_gather_and_candidates():
    m = sp.csr_matrix(np.array([[0, 0.5, 0], [0.2, 0, 0.9]], np.float32))
    np.testing.assert_allclose(gather(m, np.array([0, 1, 1, 0]), np.array([1, 2, 1, 0])), [0.5, 0.9, 0, 0])
    rows, cols = candidates({"h": m}, np.array([[0.0, 0.0, 0.3]]), np.zeros(2, int), 0.3, 0.25)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 1), (0, 2), (1, 2)]


def test_stack_output_is_go_consistent_and_round_trips(tmp_path):
    onto, labels, hits = pool(tmp_path)
    folds = make_folds(hits, labels.proteins, k=3, min_identity=99.0, seed=0)
    settings = StackSettings(member_floor=0.01, naive_floor=0.2, max_iter=20, min_samples_leaf=5)
    stack, oof = fit_stack(labels, np.full(len(folds), 150), hits, folds, onto, {t: 1.0 for t in TERMS}, settings)
    assert set(oof.members) == {"homology"}  # no kNN / neural member needed
    queries = hits[hits["qseqid"].isin(labels.proteins[:30])]
    pred = stack.predict(labels.proteins[:30], queries, np.full(30, 150))
    dense = pred.reindex(terms=TERMS).matrix.toarray()
    assert dense.max() > 0.5
    parent_of = {BP1: BP, BP2: BP1, CC3: CC, MF4: MF, MF5: MF4}
    for child, parent in parent_of.items():
        assert (dense[:, TERMS.index(parent)] >= dense[:, TERMS.index(child)] - 1e-7).all()
    stack.save(tmp_path / "stack")
    again = FittedStack.load(tmp_path / "stack", onto).predict(labels.proteins[:30], queries, np.full(30, 150))
    np.testing.assert_array_equal(again.reindex(terms=TERMS).matrix.toarray(), dense)


def test_stacker_subsamples_negatives_and_corrects_probabilities():
    rng = np.random.default_rng(0)
    from cafa_mlflow.stacker.features import Pairs

    x = rng.random((4000, 2)).astype(np.float32)
    x[:, 1] = rng.integers(0, 3, 4000)
    y = rng.random(4000) < 0.1
    pairs = Pairs(np.arange(4000), np.zeros(4000, int), x, ["score", "aspect"])
    model = Stacker(max_iter=5, neg_fraction=0.25, seed=0, ia_weight_floor=None).fit(pairs, y)
    assert model.keep_rate == 0.25
    p = model.predict_pairs(pairs)
    assert abs(p.mean() - y.mean()) < 0.03  # corrected back to the base rate, not the subsampled 0.3
