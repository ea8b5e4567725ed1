"""The shared metric vocabulary: every family recognised, evaluator tables kept out of the columns."""

from __future__ import annotations

import pytest

from cafa_mlflow.evaluation.curves import RESULT_KEYS
from cafa_mlflow.tracking.metric_names import column_metrics, metric_family, off_vocabulary


@pytest.mark.parametrize(
    ("key", "family"),
    [
        ("val_f_w_BPO", "cafa"),
        ("test_f_mean", "cafa"),
        ("test_ensemble_f_w_mean", "cafa"),
        ("val_naive_f_mean", "cafa"),
        ("test_ensemble_s_MFO", None),  # per-aspect values of other predictions: in their own runs
        ("val_naive_f_w_CCO", None),
        ("test_n_proteins", "counts"),
        ("train_max_length", "timing"),
        ("val_micro_f1_BPO", "f1"),
        ("train_loss", "epoch"),
        ("log_var_CCO", "epoch"),
        ("best_epoch", "training"),
        ("n_terms_BPO", "counts"),
        ("seconds_homology", "timing"),
        ("train_residues_per_s", "timing"),
        ("share_over_1022", "timing"),
        ("submission_lines", "submission"),
        ("best_val_f_w_mean", "tune"),
        ("system/cpu_utilization_percentage", "system"),
        ("val_tau_s_BPO", None),  # a threshold, not S-min of a member named `tau`
        ("freq_1-5_BPO", None),
        ("labels_mean_all", None),
        ("length_p50", None),
    ],
)
def test_families(key, family):
    assert metric_family(key) == family


def test_headline_keeps_a_few_measures_per_aspect():
    flat = {f"val_{k}_{a}": 0.5 for k in (*RESULT_KEYS, "n") for a in ("BPO", "CCO", "MFO")}
    flat.update({"val_f_w_mean": 0.4, "val_f_mean": 0.3, "best_epoch": 3.0, "val_micro_f1_BPO": 0.2})
    flat.update({"val_knn_f_w_mean": 0.3, "val_knn_f_w_BPO": 0.3, "val_knn_tau_BPO": 0.1})
    kept = column_metrics(flat)
    assert sorted(kept) == sorted(
        [f"val_{k}_{a}" for k in ("f_w", "f", "s", "cov") for a in ("BPO", "CCO", "MFO")]
        + ["val_f_w_mean", "val_f_mean", "best_epoch", "val_micro_f1_BPO", "val_knn_f_w_mean"]
    )
    assert len(flat) == 82 and len(kept) == 17 and off_vocabulary(kept) == []
    assert off_vocabulary(flat)[:2] == ["val_cov_max_BPO", "val_cov_max_CCO"]
