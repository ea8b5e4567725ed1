"""Ensemble: weights fitted on validation data, combination, GO-consistency, the term cap and rounding."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
from predictor_fixtures import TERMS, labels, tiny_ontology

from cafa_mlflow.config.schema import SubmissionParams
from cafa_mlflow.evaluation.scorer import Scorer
from cafa_mlflow.go.finalize import finalize, make_consistent, round_scores, top_k_per_protein
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.combine.weights import combine, fit_weights

BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS
IA = {t: 1.0 for t in TERMS}  # explicit float weights (IA 1 = unweighted F)


SUBMISSION = SubmissionParams(max_terms=1500, sig=3, min_score=0.001)


def tm(proteins, rows):
    return TermMatrix(proteins, TERMS, sp.csr_matrix(np.array(rows, np.float32)))


@pytest.fixture
def onto(tmp_path):
    return tiny_ontology(tmp_path)


def test_weights_fitted_on_validation_only_pick_the_right_member(onto):
    val_ids = ["v1", "v2", "v3"]
    truth = labels(val_ids, [[BP, BP1, BP2, CC, CC3, MF, MF4], [BP, BP1, CC, MF], [BP, CC, CC3, MF, MF4, MF5]])
    good = TermMatrix(val_ids, TERMS, truth.matrix * 0.9)
    bad = TermMatrix(val_ids, TERMS, sp.csr_matrix(np.where(truth.matrix.toarray() > 0, 0.0, 0.8)))
    scorer = Scorer(onto, truth, IA)
    seen = []

    def metric(t, pred):
        seen.append(list(pred.proteins))
        return scorer(pred)

    weights = fit_weights({"bad": bad, "good": good}, truth, metric, onto, step=0.25, method="grid")
    assert weights == {a: {"bad": 0.0, "good": 1.0} for a in ("BPO", "CCO", "MFO")}
    assert len(seen) == 5 and all(p == val_ids for p in seen)  # 5 grid points, validation proteins only


def test_coordinate_search_agrees_with_grid(onto):
    ids = ["v1", "v2"]
    truth = labels(ids, [[BP, BP1, CC, MF, MF4], [BP, CC, CC3, MF]])
    members = {
        "a": TermMatrix(ids, TERMS, truth.matrix * 0.7),
        "b": tm(ids, [[0.2] * 8, [0.6, 0.6, 0.6, 0, 0, 0, 0, 0.6]]),
        "c": tm(ids, [[0.1] * 8, [0.1] * 8]),
    }
    scorer = Scorer(onto, truth, IA)
    grid = fit_weights(members, truth, lambda t, p: scorer(p), onto, 0.25, "grid")
    coord = fit_weights(members, truth, lambda t, p: scorer(p), onto, 0.25, "coordinate")
    for aspect in grid:
        best = {
            m: scorer(combine(members, {aspect: w}, onto))[aspect]["f_w"]
            for m, w in [("g", grid[aspect]), ("c", coord[aspect])]
        }
        assert best["c"] == pytest.approx(best["g"])
        assert sum(coord[aspect].values()) == pytest.approx(1.0)


def test_combine_per_aspect_weights(onto):
    a = tm(["p"], [[0.5, 0.4, 0, 1, 1, 0.2, 0, 0]])
    b = tm(["p"], [[1, 0, 0, 0, 0.5, 0.6, 0.6, 0]])
    out = combine({"a": a, "b": b}, {"BPO": {"a": 1.0}, "CCO": {"a": 0.5, "b": 0.5}, "MFO": {"b": 1.0}}, onto)
    np.testing.assert_allclose(
        out.reindex(terms=TERMS).matrix.toarray()[0], [0.5, 0.4, 0, 0.5, 0.75, 0.6, 0.6, 0], rtol=1e-6
    )


def test_go_consistency_parent_at_least_best_child(onto):
    scores = tm(["p", "q"], [[0.1, 0.2, 0.7, 0, 0.3, 0, 0.4, 0.9], [0, 0, 0, 0, 0, 0, 0, 0.05]])
    out = make_consistent(scores, onto).reindex(terms=TERMS).matrix.toarray()
    np.testing.assert_allclose(out[0], [0.7, 0.7, 0.7, 0.3, 0.3, 0.9, 0.9, 0.9], rtol=1e-6)
    np.testing.assert_allclose(out[1], [0, 0, 0, 0, 0, 0.05, 0.05, 0.05], rtol=1e-6)
    anc = onto.ancestors.toarray()
    for row in finalize(scores, onto, SUBMISSION).reindex(terms=onto.terms).matrix.toarray():
        for child, parents in enumerate(anc):
            assert (row[parents] >= row[child]).all()


def test_top_k_keeps_the_best_of_many_terms():
    rng = np.random.default_rng(0)
    scores = rng.permutation(2000)[None, :].repeat(2, axis=0) / 2000.0 + 0.0001
    terms = [f"T{i}" for i in range(2000)]
    capped = top_k_per_protein(TermMatrix(["a", "b"], terms, sp.csr_matrix(scores)), k=1500)
    assert list(np.diff(capped.matrix.indptr)) == [1500, 1500]
    kept = capped.matrix.toarray()[0]
    assert kept[kept > 0].min() == pytest.approx(np.sort(scores[0])[-1500], rel=1e-6)


def test_finalize_cap_keeps_ancestors_on_ties(onto):
    scores = tm(["p"], [[0, 0, 0.8, 0, 0.5, 0, 0, 0.3]])  # consistent: BP, BP1, BP2 = 0.8; MF* = 0.3
    out = finalize(scores, onto, replace(SUBMISSION, max_terms=4)).reindex(terms=TERMS).matrix.toarray()[0]
    np.testing.assert_allclose(out, [0.8, 0.8, 0.8, 0.5, 0, 0, 0, 0], rtol=1e-6)  # ties at 0.5: root CCO first


def test_round_to_three_significant_figures():
    x = tm(["p"], [[0.123456, 0.0012345, 0.99951, 0.0004, 0.5, 1.0, 0.000999, 0.98765]])
    out = round_scores(x, sig=3, min_score=0.001).matrix.toarray()[0]
    np.testing.assert_allclose(out, [0.123, 0.00123, 1.0, 0, 0.5, 1.0, 0, 0.988], rtol=1e-6)


def test_weights_are_chosen_on_the_rounded_candidates(onto):
    ids = ["v1"]
    truth = labels(ids, [[BP, BP1]])
    members = {"a": tm(ids, [[0.123456, 0.0004, 0, 0, 0, 0, 0, 0]]), "b": tm(ids, [[0.5, 0.5, 0, 0, 0, 0, 0, 0]])}
    seen = []

    def metric(t, pred):
        seen.append(pred.matrix.data.copy())
        return {a: {"f_w": 0.0} for a in ("BPO", "CCO", "MFO")}

    fit_weights(members, truth, metric, onto, step=0.5, transform=lambda x: round_scores(x, 2, 0.01))
    assert len(seen) == 3
    np.testing.assert_allclose(seen[0], [0.5, 0.5])  # a = 0: b alone
    np.testing.assert_allclose(seen[-1], [0.12])  # a alone, rounded to 2 figures; 0.0004 dropped


def test_ensemble_predictor_fits_on_saved_member_scores_and_round_trips(onto, tmp_path):
    from types import SimpleNamespace

    from cafa_mlflow.predictors.base import Predictor, ProteinSet, TrainSet
    from cafa_mlflow.predictors.combine.blend import EnsemblePredictor
    from cafa_mlflow.predictors.naive import NaivePredictor

    val_ids = ["v1", "v2", "v3"]
    truth = labels(val_ids, [[BP, BP1, BP2, CC, CC3, MF, MF4], [BP, BP1, CC, MF], [BP, CC, CC3, MF, MF4, MF5]])
    good = TermMatrix(val_ids, TERMS, truth.matrix * 0.9)
    bad = TermMatrix(val_ids, TERMS, sp.csr_matrix(np.where(truth.matrix.toarray() > 0, 0.0, 0.8)))
    members = {name: NaivePredictor(onto).fit(TrainSet.from_labels(truth)) for name in ("bad", "good")}
    settings = SimpleNamespace(step=0.25, search="grid", max_grid_points=300)
    ensemble = EnsemblePredictor(members, onto, settings, SUBMISSION)
    ensemble.fit(
        TrainSet.from_labels(truth), scorer=Scorer(onto, truth, IA), member_predictions={"bad": bad, "good": good}
    )
    assert ensemble.weights == {a: {"bad": 0.0, "good": 1.0} for a in ("BPO", "CCO", "MFO")}
    table = ensemble.report_tables({}, truth)["weights"]  # what the ensemble run logs as ensemble_weights.tsv
    assert sorted(table["aspect"]) == ["BPO", "CCO", "MFO"] and list(table["good"]) == [1.0] * 3
    loaded = Predictor.load(ensemble.save(tmp_path / "ensemble"))
    query = ProteinSet(["q"])
    expected = members["good"].predict(query).reindex(terms=TERMS).matrix.toarray()
    np.testing.assert_allclose(loaded.predict(query).reindex(terms=TERMS).matrix.toarray(), expected, rtol=1e-6)


def _same(a: TermMatrix, b: TermMatrix) -> None:
    """Exactly equal TermMatrices: ids, and the CSR arrays element for element."""
    assert (a.proteins, a.terms, a.shape) == (b.proteins, b.terms, b.shape)
    for name in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(a.matrix, name), getattr(b.matrix, name)), name


def _tied_scores(n: int, seed: int = 0) -> TermMatrix:
    """n proteins over TERMS plus one term the ontology lacks; few distinct values, so the cap meets ties."""
    rng = np.random.default_rng(seed)
    values = rng.choice([0.0, 0.0, 0.0005, 0.1, 0.2, 0.2, 0.5, 0.71234], size=(n, len(TERMS) + 1))
    return TermMatrix([f"p{i}" for i in range(n)], [*TERMS, "GO:9999999"], sp.csr_matrix(values.astype(np.float32)))


def test_finalize_in_protein_blocks_equals_the_whole(onto):
    scores, sub = _tied_scores(41), replace(SUBMISSION, max_terms=3)
    whole = make_consistent(scores, onto)  # the unblocked steps, one after the other
    n_ancestors = onto.ancestors.getnnz(axis=1)[[onto.index[t] for t in whole.terms]]
    expected = round_scores(top_k_per_protein(whole, sub.max_terms, n_ancestors), sub.sig, sub.min_score)
    for block_rows in (1, 4, 41, 1000):
        _same(finalize(scores, onto, sub, block_rows=block_rows), expected)


def test_ensemble_finalized_in_blocks_equals_finalize_of_combine(onto, monkeypatch):
    from cafa_mlflow.predictors.combine import blend
    from cafa_mlflow.predictors.combine.blend import EnsemblePredictor
    from cafa_mlflow.predictors.naive import NaivePredictor

    members = {"a": _tied_scores(23, 1).reindex(terms=TERMS), "b": _tied_scores(23, 2).reindex(terms=TERMS[2:])}
    ensemble = EnsemblePredictor({name: NaivePredictor() for name in members}, onto)
    ensemble.weights = {"BPO": {"a": 0.3, "b": 0.7}, "CCO": {"a": 1.0}, "MFO": {"a": 0.45, "b": 0.55}}
    ensemble.term_aspect = {t: a for t, a in zip(onto.terms, onto.aspect) if t in TERMS}
    ids = [f"p{i}" for i in range(22, -1, -2)]  # a subset, in another order
    sub = replace(SUBMISSION, max_terms=4)
    expected = finalize(ensemble.combine(members, ids), onto, sub, block_rows=len(ids))
    monkeypatch.setattr(blend, "BLOCK_ROWS", 5)
    _same(ensemble.finalized(members, ids, onto, sub), expected)


def test_members_on_one_encoder_path_load_from_any_directory(tmp_path, monkeypatch):
    """Members fitted on the same local checkpoint, named by a path relative to where the chain ran: the saved
    ensemble loads elsewhere (equal settings need no file; the served model then points at its carried copy),
    while members on different encoders are still refused."""
    from types import SimpleNamespace

    from cafa_mlflow.embed.settings import EmbedSettings
    from cafa_mlflow.errors import InputError
    from cafa_mlflow.predictors.combine.blend import common_embed

    block = {"esm_model": "outputs/esm2_tiny.pt", "layer": -1, "strategy": "balanced", "window": 1022}
    block |= {"stride": 256, "pooling": "mean", "max_residues": 1022, "precision": "fp32"}
    settings = EmbedSettings(**block)
    monkeypatch.chdir(tmp_path)  # no outputs/esm2_tiny.pt here
    members = {"knn": SimpleNamespace(embed=settings), "neural": SimpleNamespace(embed=replace(settings))}
    assert common_embed({**members, "naive": SimpleNamespace(embed=None)}) == settings
    hub = replace(settings, esm_model="esm2_t6_8M_UR50D")
    pooled_max = SimpleNamespace(embed=replace(hub, pooling="max"))
    with pytest.raises(InputError, match="fitted on different embeddings"):
        common_embed({"knn": SimpleNamespace(embed=hub), "neural": pooled_max})
