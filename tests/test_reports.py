"""DVC-facing files: the headline metrics, PR curves per aspect, training curves."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.evaluation.reports import headline, write_headline, write_history, write_pr_curves
from cafa_mlflow.evaluation.scorer import Scorer, read_truth
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.go.ontology import load_obo
from tests.cafa_fixtures import OBO, TERMS_TSV, write


def _result(f_w: float) -> dict:
    aspect = {"f_w": f_w, "f": f_w + 0.1, "s": 2.0, "tau": 0.3, "cov": 1.0}
    return {"BPO": aspect, "CCO": dict(aspect), "MFO": {**aspect, "s": float("nan")}, "mean_f_w": f_w, "mean_f": 0.5}


def test_headline_is_a_few_numbers_per_aspect(tmp_path):
    results = {"knn": _result(0.2), "naive": _result(0.1), "ensemble": _result(0.312345)}
    top = headline(results)
    assert top == {
        "ensemble": {
            "BPO": {"f_w": 0.3123, "f": 0.4123, "s": 2.0},
            "CCO": {"f_w": 0.3123, "f": 0.4123, "s": 2.0},
            "MFO": {"f_w": 0.3123, "f": 0.4123, "s": None},
            "f_w_mean": 0.3123,
            "f_mean": 0.5,
        },
        "members": {"knn": 0.2, "naive": 0.1},
    }
    path = write_headline(results, tmp_path / "m" / "headline.json")
    assert json.loads(path.read_text()) == top and "NaN" not in path.read_text()


def test_pr_curves_per_aspect(tmp_path):
    ontology = load_obo(write(tmp_path / "go.obo", OBO))
    truth = read_truth(write(tmp_path / "t.tsv", TERMS_TSV), ontology)
    scorer = Scorer(ontology, truth, None, 0.25)  # thresholds 0.25, 0.5, 0.75
    terms = ["GO:0000002", "GO:0000011"]
    scores = sp.csr_matrix(np.array([[0.9, 0], [0.6, 0], [0.3, 0], [0, 0], [0, 0.8], [0, 0.4]], dtype=np.float32))
    pred = TermMatrix(truth.proteins, terms, scores)
    paths = write_pr_curves(scorer.curves(pred), scorer.tau, tmp_path / "plots")
    assert sorted(p.name for p in paths) == [
        "pr_BPO.csv",
        "pr_CCO.csv",
        "pr_MFO.csv",
        "pr_animal.csv",
        "precision_recall.png",
    ]
    bpo = pd.read_csv(tmp_path / "plots" / "pr_BPO.csv")
    assert bpo.columns.tolist() == ["threshold", "recall", "precision", "recall_w", "precision_w"]
    # at 0.75 only P1 predicts {GO:2, root} of its 5 true terms: recall 2/5 averaged over 4 BP proteins
    assert bpo.values.tolist() == [
        [0.25, 0.475, 0.833333, 0.475, 0.833333],
        [0.5, 0.35, 1.0, 0.35, 1.0],
        [0.75, 0.1, 1.0, 0.1, 1.0],
    ]
    assert pd.read_csv(tmp_path / "plots" / "pr_MFO.csv").empty  # no MF truth or predictions


def test_training_history(tmp_path):
    history = [
        {"train_loss": 0.9, "val_loss": 0.8, "lr": 0.001, "val_f_w_mean": 0.1, "val_f_w_BPO": 0.2},
        {"train_loss": 0.5, "val_loss": 0.6, "lr": 0.001, "val_f_w_mean": 0.3, "val_f_w_BPO": 0.4},
    ]
    frame = pd.read_csv(write_history(history, tmp_path / "history.csv"))
    assert frame.columns.tolist() == ["epoch", "train_loss", "val_loss", "val_f_w_mean", "lr"]
    assert frame["epoch"].tolist() == [1, 2] and frame["val_loss"].tolist() == [0.8, 0.6]
    assert (tmp_path / "history.png").read_bytes()[:4] == b"\x89PNG"  # what `dvc plots show` puts on its page
