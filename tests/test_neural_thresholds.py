import numpy as np
import scipy.sparse as sp

from cafa_mlflow.predictors.neural.thresholds import (
    Thresholds,
    choose_aspect_thresholds,
    choose_thresholds,
    threshold_grid,
)


def test_grid():
    g = threshold_grid(0.01)
    assert len(g) == 99 and g[0] == 0.01 and g[-1] == 0.99 and g[34] == 0.35


def _one_term(scores, labels):
    return sp.csr_matrix(np.array(scores, dtype=np.float32)[:, None]), sp.csr_matrix(np.array(labels)[:, None])


def test_aspect_threshold_maximizes_validation_f1():
    # positives 0.9, 0.8, 0.35; negatives 0.6, 0.3, 0.1: best F1 (6/7) for t in (0.30, 0.35]
    s, y = _one_term([0.9, 0.8, 0.35, 0.6, 0.3, 0.1], [1, 1, 1, 0, 0, 0])
    assert choose_aspect_thresholds(s, y, np.array(["MFO"]), threshold_grid(0.01)) == {"MFO": 0.31}
    # a score equal to a grid value (in float32) counts as predicted at that threshold
    s, y = _one_term([0.9, 0.8, 0.35, 0.6, 0.34, 0.1], [1, 1, 1, 0, 0, 0])
    assert choose_aspect_thresholds(s, y, np.array(["MFO"]), threshold_grid(0.01)) == {"MFO": 0.35}


def test_aspect_threshold_with_metric_callable():
    s, y = _one_term([0.9, 0.8, 0.35, 0.6, 0.3, 0.1], [1, 1, 1, 0, 0, 0])

    def precision(y_true, y_pred):
        return y_true.multiply(y_pred).sum() / max(y_pred.sum(), 1)

    # precision is 1 from t > 0.6 on; ties go to the lowest such threshold
    assert choose_aspect_thresholds(s, y, np.array(["MFO"]), threshold_grid(0.01), precision) == {"MFO": 0.61}


def test_per_term_thresholds_with_support_fallback():
    rng = np.random.default_rng(0)
    n = 40
    y = np.zeros((n, 3), dtype=np.float32)
    y[:10, 0] = 1  # term 0: 10 positives, scored 0.5 vs negatives 0.2
    y[:2, 1] = 1  # term 1: 2 positives < min_support
    y[:8, 2] = 1  # term 2 (other aspect)
    s = np.where(y > 0, 0.5, 0.2).astype(np.float32)
    s[:, 2] = np.where(y[:, 2] > 0, 0.8, 0.05)
    s[:, 1] = rng.uniform(0.01, 0.9, n)
    aspects = np.array(["BPO", "BPO", "CCO"])
    th = choose_thresholds(sp.csr_matrix(s), sp.csr_matrix(y), aspects, 0.01, per_term=True, min_support=5)
    assert th.source.tolist() == ["term", "aspect", "term"]
    assert th.term[0] == 0.21 and th.term[2] == 0.06  # lowest grid value separating perfectly
    assert th.term[1] == th.aspect["BPO"]
    assert th.support.tolist() == [10, 2, 8] and th.f1[0] == 1.0
    only_aspect = choose_thresholds(sp.csr_matrix(s), sp.csr_matrix(y), aspects, 0.01, per_term=False, min_support=5)
    assert set(only_aspect.source) == {"aspect"}
    frame = th.to_frame(["GO:1", "GO:2", "GO:3"], aspects)
    assert frame.columns.tolist() == ["term", "aspect", "threshold", "source", "val_support", "val_f1"]
    back = Thresholds.from_json(th.to_json())
    np.testing.assert_array_equal(back.term, th.term)
    assert back.aspect == th.aspect and np.isnan(back.f1[1]) == np.isnan(th.f1[1])


def test_apply_keeps_scores_at_or_above_term_threshold():
    th = Thresholds(
        {"BPO": 0.3},
        np.array([0.3, 0.5]),
        np.array(["aspect", "term"], dtype=object),
        np.array([0, 0]),
        np.array([np.nan, np.nan]),
    )
    s = sp.csr_matrix(np.array([[0.3, 0.4], [0.2, 0.5]], dtype=np.float32))
    np.testing.assert_array_equal(th.apply(s).toarray(), np.array([[0.3, 0.0], [0.0, 0.5]], dtype=np.float32))
