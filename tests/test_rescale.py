"""Per-protein rescaling of the blend (ensemble.rescale): exact values, the per-aspect choice, save and load."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from predictor_fixtures import TERMS, labels, tiny_ontology

from cafa_mlflow.config.schema import SubmissionParams
from cafa_mlflow.evaluation.scorer import Scorer
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.io.text import seal
from cafa_mlflow.predictors.base import Predictor, TrainSet
from cafa_mlflow.predictors.combine.blend import CONFIG, EnsemblePredictor
from cafa_mlflow.predictors.combine.rescale import choose_rescaled, rescale_by_protein_max
from cafa_mlflow.predictors.naive import NaivePredictor

BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS
IA = {t: 1.0 for t in TERMS}
ASPECT = {BP: "BPO", BP1: "BPO", BP2: "BPO", CC: "CCO", CC3: "CCO", MF: "MFO", MF4: "MFO", MF5: "MFO"}
SUBMISSION = SubmissionParams(max_terms=1500, sig=3, min_score=0.001)


@pytest.fixture
def onto(tmp_path):
    return tiny_ontology(tmp_path)


def scores(rows: list[dict[str, float]]) -> TermMatrix:
    dense = np.array([[row.get(t, 0.0) for t in TERMS] for row in rows], np.float32)
    return TermMatrix([f"p{i + 1}" for i in range(len(rows))], list(TERMS), sp.csr_matrix(dense))


def values(tm: TermMatrix) -> list[dict[str, float]]:
    dense = tm.matrix.toarray()
    return [{t: round(float(v), 6) for t, v in zip(tm.terms, row) if v} for row in dense]


def test_each_protein_divided_by_its_best_non_root_score_in_the_chosen_aspect():
    pred = scores([
        {BP: 1.0, BP1: 0.4, BP2: 0.2, MF: 1.0, MF4: 0.5, MF5: 0.25},
        {CC3: 0.3, MF4: 0.8},
        {BP1: 0.1},
    ])  # fmt: skip
    out = rescale_by_protein_max(pred, ASPECT, {"MFO": [MF]})
    assert values(out) == [
        {BP: 1.0, BP1: 0.4, BP2: 0.2, MF: 1.0, MF4: 1.0, MF5: 0.5},  # the root and the other aspects as they were
        {CC3: 0.3, MF4: 1.0},
        {BP1: 0.1},  # no MFO score: nothing to rescale
    ]
    assert values(pred)[0][MF4] == 0.5  # the input is not changed
    assert rescale_by_protein_max(pred, ASPECT, {}) is pred


def test_rescaling_is_chosen_only_where_it_raises_the_f_max(onto):
    # MFO: p2's true terms score low for everyone's threshold, rescaled they reach 1; BPO: rescaling ties (kept off)
    truth = labels(["p1", "p2"], [[BP, BP1, MF, MF4], [BP, MF, MF4, MF5]])
    pred = scores([{BP1: 0.9, BP2: 0.05, MF4: 0.9, MF5: 0.3}, {BP1: 0.2, MF4: 0.2, MF5: 0.2}])
    scorer = Scorer(onto, truth, IA)
    roots = {a: onto.roots(a) for a in ("BPO", "CCO", "MFO")}
    assert choose_rescaled(pred, ASPECT, roots, scorer) == {"MFO": [MF]}
    plain, rescaled = scorer(pred), scorer(rescale_by_protein_max(pred, ASPECT, {"MFO": [MF]}))
    assert rescaled["MFO"]["f_w"] == 1.0 > plain["MFO"]["f_w"] and rescaled["BPO"] == plain["BPO"]


@pytest.mark.parametrize("rescale", ["auto", "never"])
def test_the_blend_fits_saves_and_loads_its_choice(onto, tmp_path, rescale):
    truth = labels(["p1", "p2"], [[BP, BP1, MF, MF4], [BP, MF, MF4, MF5]])
    pred = scores([{BP1: 0.9, BP2: 0.05, MF4: 0.9, MF5: 0.3}, {BP1: 0.2, MF4: 0.2, MF5: 0.2}])
    member = NaivePredictor(onto).fit(TrainSet.from_labels(truth))
    settings = SimpleNamespace(step=1.0, search="grid", max_grid_points=300, rescale=rescale)
    blend = EnsemblePredictor({"only": member}, onto, settings, SUBMISSION)
    blend.fit(TrainSet.from_labels(truth), scorer=Scorer(onto, truth, IA), member_predictions={"only": pred})
    expected = {"MFO": [MF]} if rescale == "auto" else {}
    assert blend.rescaled == expected
    assert blend.summary()["rescale_MFO"] is (rescale == "auto") and blend.summary()["rescale_BPO"] is False
    assert list(blend.report_tables({}, truth)["weights"]["rescaled"]) == [a in expected for a in blend.weights]
    combined = blend.combine({"only": pred}, ["p1", "p2"]).reindex(terms=TERMS)
    assert values(combined)[1][MF5] == (1.0 if rescale == "auto" else 0.2)
    loaded = Predictor.load(blend.save(tmp_path / "blend"))
    assert loaded.rescaled == expected


def test_a_blend_saved_before_the_setting_loads_without_rescaling(onto, tmp_path):
    truth = labels(["p1"], [[BP, BP1]])
    member = NaivePredictor(onto).fit(TrainSet.from_labels(truth))
    blend = EnsemblePredictor({"only": member}, onto, SimpleNamespace(step=1.0, search="grid", max_grid_points=300))
    blend.fit(TrainSet.from_labels(truth), scorer=Scorer(onto, truth, IA), member_predictions={"only": scores([{}])})
    folder = blend.save(tmp_path / "old")
    config = json.loads((folder / CONFIG).read_text())
    config.pop("rescaled")
    (folder / CONFIG).write_text(json.dumps(config))
    seal(folder)  # the folder as an older version sealed it
    assert Predictor.load(folder).rescaled == {}
