"""Evaluator on a hand-made ontology: every number computed by hand (and checked against cafaeval)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp

from cafa_mlflow.evaluation.curves import passes, thresholds
from cafa_mlflow.evaluation.scorer import Scorer, evaluate_predictions, f1_at_thresholds, flat_metrics, read_truth
from cafa_mlflow.go.labels import TermMatrix, read_submission
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.ia import read_ia
from pipelines import evaluate as evaluate_pipeline

# BPO: A <- B, A <- C, D is_a B and part_of C (alt_id D2); MFO: M <- N; CCO: Z alone; X obsolete.
OBO = """format-version: 1.2

[Term]
id: GO:0000001
name: A
namespace: biological_process

[Term]
id: GO:0000002
name: B
namespace: biological_process
is_a: GO:0000001 ! A

[Term]
id: GO:0000003
name: C
namespace: biological_process
is_a: GO:0000001 ! A

[Term]
id: GO:0000004
name: D
namespace: biological_process
alt_id: GO:0000044
is_a: GO:0000002 ! B
relationship: part_of GO:0000003 ! C

[Term]
id: GO:0000005
name: M
namespace: molecular_function

[Term]
id: GO:0000006
name: N
namespace: molecular_function
is_a: GO:0000005 ! M

[Term]
id: GO:0000007
name: Z
namespace: cellular_component

[Term]
id: GO:0000008
name: X
namespace: molecular_function
is_obsolete: true
"""
TRUTH = "EntryID\tterm\taspect\np1\tGO:0000044\tP\np2\tGO:0000002\tP\np2\tGO:0000006\tF\np3\tGO:0000006\tF\np3\tGO:0000008\tF\n"
PRED = (
    "p1\tGO:0000004\t0.5\np1\tGO:0000044\t0.4\np1\tGO:0000003\t0.8\np1\tGO:0009999\t0.9\n"
    "p1\tText\t0.5\tfree text\np2\tGO:0000003\t0.3\np2\tGO:0000006\t0.6\np3\tGO:0000005\t0.2\np4\tGO:0000002\t0.9\n"
)
IA = "GO:0000001\t0\nGO:0000002\t1\nGO:0000003\t2\nGO:0000004\t1\nGO:0000005\t0\nGO:0000006\t3"
TAU3 = np.arange(0.1, 1, 0.1)[2]  # 0.30000000000000004: a score of 0.3 does not reach it (cafaeval's grid)

# Worked by hand with th_step 0.1 (propagated predictions: p1 A .8 B .5 C .8 D .5; p2 A .3 C .3 | M .6 N .6; p3 M .2)
EXPECTED = {
    "BPO": {
        "n": 2,
        "f": 0.75,
        "tau": 0.1,
        "pr": 0.75,
        "rc": 0.75,
        "cov": 1.0,
        "f_w": 2 / 3,
        "tau_w": TAU3,
        "pr_w": 1.0,
        "rc_w": 0.5,
        "cov_w": 0.5,
        "s": math.sqrt(0.5),
        "tau_s": 0.1,
        "ru": 0.5,
        "mi": 0.5,
        "s_w": 0.5,
        "tau_s_w": TAU3,
        "ru_w": 0.5,
        "mi_w": 0.0,
        "f_micro": 5 / 6,
        "tau_micro": 0.1,
    },
    "MFO": {
        "n": 2,
        "f": 6 / 7,
        "tau": 0.1,
        "pr": 1.0,
        "rc": 0.75,
        "cov": 1.0,
        "f_w": 2 / 3,
        "tau_w": 0.1,
        "pr_w": 1.0,
        "rc_w": 0.5,
        "cov_w": 0.5,
        "s": 0.5,
        "tau_s": 0.1,
        "ru": 0.5,
        "mi": 0.0,
    },
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    for name, text in (("go.obo", OBO), ("truth.tsv", TRUTH), ("ia.tsv", IA)):
        (root / name).write_text(text)
    (root / "pred").mkdir()
    (root / "pred" / "pred.tsv").write_text(PRED)
    return root


def _result(tiny):
    ontology = load_obo(tiny / "go.obo")
    truth = read_truth(tiny / "truth.tsv", ontology)
    return evaluate_predictions(
        ontology, truth, read_submission(tiny / "pred" / "pred.tsv"), read_ia(tiny / "ia.tsv"), th_step=0.1
    )


def test_hand_computed_values(tiny):
    result = _result(tiny)
    for aspect, expected in EXPECTED.items():
        for key, value in expected.items():
            assert result[aspect][key] == pytest.approx(value, abs=1e-12), (aspect, key)
    assert result["CCO"]["n"] == 0 and math.isnan(result["CCO"]["f_w"])  # no truth: not evaluated
    assert result["mean_f_w"] == pytest.approx(2 / 3)
    assert result["mean_f"] == pytest.approx((0.75 + 6 / 7) / 2)


def test_hand_example_matches_cafaeval(tiny):
    from cafaeval.evaluation import cafa_eval

    _, best = cafa_eval(
        str(tiny / "go.obo"),
        str(tiny / "pred"),
        str(tiny / "truth.tsv"),
        ia=str(tiny / "ia.tsv"),
        prop="max",
        norm="cafa",
        th_step=0.1,
    )
    result = _result(tiny)
    for ns, aspect in (("biological_process", "BPO"), ("molecular_function", "MFO")):
        f = best["f"].reset_index().set_index("ns").loc[ns]
        fw = best["f_w"].reset_index().set_index("ns").loc[ns]
        s = best["s"].reset_index().set_index("ns").loc[ns]
        assert (result[aspect]["f"], result[aspect]["tau"]) == pytest.approx((f["f"], f["tau"]), abs=1e-12)
        assert (result[aspect]["f_w"], result[aspect]["tau_w"]) == pytest.approx((fw["f_w"], fw["tau"]), abs=1e-12)
        assert (result[aspect]["s"], result[aspect]["tau_s"]) == pytest.approx((s["s"], s["tau"]), abs=1e-12)


def test_scorer_takes_term_matrices_over_any_vocabulary(tiny):
    ontology = load_obo(tiny / "go.obo")
    truth = TermMatrix(
        ["p1", "p2", "p3"],
        ["GO:0000004", "GO:0000002", "GO:0000006"],
        sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1]], dtype=np.float32)),
    )
    scorer = Scorer(ontology, truth, read_ia(tiny / "ia.tsv"), th_step=0.1)
    pred = TermMatrix(
        ["p4", "p3", "p2", "p1"],
        ["GO:0000003", "GO:0000044", "GO:0000006", "GO:0000005"],
        sp.csr_matrix(np.array([[0.9, 0, 0, 0], [0, 0, 0, 0.2], [0.3, 0, 0.6, 0], [0.8, 0.5, 0, 0]], dtype=np.float32)),
    )
    first, again = scorer(pred), scorer(pred)
    assert json.dumps(first) == json.dumps(again)  # cached alignment gives the same answer
    for aspect, expected in EXPECTED.items():
        for key, value in expected.items():
            assert first[aspect][key] == pytest.approx(value, abs=1e-12), (aspect, key)
    repeated = TermMatrix(
        ["p1", "p2", "p1", "p3"],
        ["GO:0000044", "GO:0000004", "GO:0000003", "GO:0000006", "GO:0000005"],
        sp.csr_matrix(
            np.array(
                [[0.4, 0, 0.8, 0, 0], [0, 0, 0.3, 0.6, 0], [0, 0.5, 0.1, 0, 0], [0, 0, 0, 0, 0.2]], dtype=np.float32
            )
        ),
    )
    again = scorer(repeated)  # a protein twice, a term under its alt_id and primary id: cells keep their max
    for aspect, expected in EXPECTED.items():
        for key, value in expected.items():
            assert again[aspect][key] == pytest.approx(value, abs=1e-12), (aspect, key)
    empty = scorer(TermMatrix(["p1"], ["GO:0000003"], sp.csr_matrix((1, 1), dtype=np.float32)))
    assert empty["BPO"]["f_w"] == 0.0 and empty["BPO"]["cov"] == 0.0 and math.isnan(empty["BPO"]["tau_w"])


def test_float32_scores_tie_with_thresholds_like_float64_decimals():
    tau = thresholds(0.01)
    scores = np.array([0.07, 0.06, 0.29, 0.3, 0.5, 0.0699999, 0.06999999, 1.0, 0.005], dtype=np.float32)
    expected = [
        int(np.sum(tau <= float(str(s))))
        for s in ["0.07", "0.06", "0.29", "0.3", "0.5", "0.0699999", "0.06999999", "1.0", "0.005"]
    ]
    assert passes(scores, tau).tolist() == expected
    assert expected[:4] == [7, 5, 28, 30]  # 0.06 < tau[5] = 0.060000000000000005, 0.29 < tau[28]
    assert passes(np.array([np.nan, -1, 7], np.float32), tau).tolist() == [0, 0, len(tau)]


def test_flat_metrics_names(tiny):
    flat = flat_metrics(_result(tiny), prefix="val_")
    assert flat["val_f_w_BPO"] == pytest.approx(2 / 3)
    assert flat["val_f_w_mean"] == pytest.approx(2 / 3)
    assert flat["val_tau_MFO"] == pytest.approx(0.1)
    assert "val_f_mean" in flat and all(isinstance(v, float) for v in flat.values())


def test_f1_at_thresholds_by_hand():
    truth = TermMatrix(["a", "b"], ["t1", "t2", "t3"], sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0]], np.float32)))
    pred = TermMatrix(["b", "a"], ["t3", "t2", "t1"], sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], np.float32)))
    out = f1_at_thresholds(truth, pred, ["BPO", "BPO", "MFO"])
    assert out == pytest.approx(
        {"micro_f1_BPO": 0.8, "macro_f1_BPO": (1 + 2 / 3) / 2, "micro_f1_MFO": 0.0, "macro_f1_MFO": 0.0}
    )


def test_cli_file_mode_writes_json(tiny, tmp_path, capsys):
    from pipelines.cli import main

    out = tmp_path / "m" / "test.json"
    code = main(
        [
            "evaluate",
            "--obo",
            str(tiny / "go.obo"),
            "--truth",
            str(tiny / "truth.tsv"),
            "--pred",
            str(tiny / "pred" / "pred.tsv"),
            "--ia",
            str(tiny / "ia.tsv"),
            "--threshold-step",
            "0.1",
            "--out-json",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert data["BPO"]["f_w"] == pytest.approx(2 / 3) and data["BPO"]["tau_w"] == pytest.approx(TAU3)
    assert data["MFO"]["f"] == pytest.approx(6 / 7) and data["mean_f_w"] == pytest.approx(2 / 3)
    assert data["CCO"]["f_w"] is None  # NaN is written as null
    assert "BPO" in capsys.readouterr().out


def test_cli_bad_submission_is_a_clear_error(tiny, tmp_path, capsys):
    from pipelines.cli import main

    bad = tmp_path / "bad.tsv"
    bad.write_text("p1\tGO:0000004\tabc\n")
    out = tmp_path / "test.json"
    code = main(
        [
            "evaluate",
            "--obo",
            str(tiny / "go.obo"),
            "--truth",
            str(tiny / "truth.tsv"),
            "--pred",
            str(bad),
            "--ia",
            str(tiny / "ia.tsv"),
            "--out-json",
            str(out),
        ]
    )
    assert code == 2 and not out.exists()
    assert "bad.tsv:1" in capsys.readouterr().err


def test_folder_mode_logs_every_predictor(tiny, tmp_path, monkeypatch):
    """`cafa evaluate` without --pred: every <name>/test.npz, JSON + markdown table, one MLflow run."""
    import mlflow

    from cafa_mlflow.go.labels import save_term_matrix

    for var in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    pred = read_submission(tiny / "pred" / "pred.tsv")
    save_term_matrix(tmp_path / "preds" / "naive" / "test.npz", pred)
    save_term_matrix(tmp_path / "preds" / "ensemble" / "test.npz", pred)
    out = tmp_path / "metrics" / "test.json"
    (tmp_path / "fast.yaml").write_text("tracking:\n  system_metrics: false\n")  # no sampling thread to wait for
    evaluate_pipeline.main(
        [
            "--params-file",
            str(tmp_path / "fast.yaml"),
            "--obo",
            str(tiny / "go.obo"),
            "--truth",
            str(tiny / "truth.tsv"),
            "--ia",
            str(tiny / "ia.tsv"),
            "--threshold-step",
            "0.1",
            "--outputs-predictions",
            str(tmp_path / "preds"),
            "--out-json",
            str(out),
        ]
    )
    data = json.loads(out.read_text())
    assert list(data) == ["naive", "ensemble"]  # members first, the ensemble last
    assert data["ensemble"]["BPO"]["f_w"] == pytest.approx(2 / 3)
    table = (tmp_path / "metrics" / "test_table.md").read_text()
    assert "| naive | 0.667 | - | 0.667 | 0.667 |" in table
    run = mlflow.search_runs(experiment_names=["cafa-mlflow"], output_format="list")[0]
    assert run.data.metrics["test_ensemble_f_w_mean"] == pytest.approx(2 / 3)
    assert data["naive"]["BPO"]["f"] == pytest.approx(0.75)  # every measure per aspect: in test.json
    assert "test_naive_f_BPO" not in run.data.metrics and run.data.metrics["test_naive_f_mean"] > 0  # columns: means


def test_scores_counted_in_chunks_give_the_same_curves(tmp_path, monkeypatch):
    from predictor_fixtures import TERMS, tiny_ontology

    from cafa_mlflow.evaluation import scorer as scorer_module

    onto = tiny_ontology(tmp_path)
    rng = np.random.default_rng(0)
    proteins = [f"p{i}" for i in range(30)]
    truth = TermMatrix(proteins, TERMS, sp.csr_matrix((rng.random((30, len(TERMS))) < 0.3).astype(np.float32)))
    pred = TermMatrix(proteins, TERMS, sp.random(30, len(TERMS), density=0.5, random_state=2, format="csr"))
    whole = Scorer(onto, truth).curves(pred)
    monkeypatch.setattr(scorer_module, "PASS_CHUNK", 7)
    chunked = Scorer(onto, truth).curves(pred)
    for aspect, pair in whole.items():
        for weighted, curves in enumerate(pair):  # unweighted, then IA-weighted
            for key, values in curves.items():
                assert np.array_equal(chunked[aspect][weighted][key], values, equal_nan=True), (aspect, key)
