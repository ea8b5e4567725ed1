import numpy as np
import pytest
import scipy.sparse as sp
import torch
from neural_fixtures import ASPECTS, params, tiny_chunks, tiny_data, tiny_esm, tiny_sequences

from cafa_mlflow.errors import ConfigError, MissingWeightsError
from cafa_mlflow.predictors.neural import NeuralPredictor, choose_thresholds, predict_scores, train_val_split
from cafa_mlflow.predictors.neural.data import DenseInputs

TERMS = [f"GO:{i:07d}" for i in range(12)]


def _data(model):
    x, y = tiny_data()
    xv, yv = tiny_data(n=32, seed=1)
    if model == "chunk_attention":
        return tiny_chunks(x), y, tiny_chunks(xv, seed=1), yv
    return x, y, xv, yv


@pytest.mark.parametrize("model", ["simple", "multitask", "chunk_attention"])
def test_save_load_round_trip(tmp_path, model):
    x, y, xv, yv = _data(model)
    pred = NeuralPredictor(params(model=model, min_score=0.01))
    pred.fit_arrays(x, y, ASPECTS, val=(xv, yv), terms=TERMS)
    before = pred.predict_arrays(xv)
    pred.save(tmp_path / "m")
    loaded = NeuralPredictor.load(tmp_path / "m")
    after = loaded.predict_arrays(xv)
    assert isinstance(after, sp.csr_matrix) and after.shape == (32, 12)
    assert (before != after).nnz == 0
    assert loaded.terms == TERMS and loaded.params == pred.params
    np.testing.assert_array_equal(loaded.thresholds.term, pred.thresholds.term)


def test_model_saved_before_fused_optimizer_loads(tmp_path):
    """A model saved before `train.fused_optimizer` existed loads with the optimizer it was trained with."""
    import json

    from cafa_mlflow.io.text import seal

    x, y, xv, yv = _data("simple")
    pred = NeuralPredictor(params(model="simple", fused_optimizer=True))
    pred.fit_arrays(x, y, ASPECTS, val=(xv, yv), terms=TERMS)
    pred.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["params"]["fused_optimizer"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    seal(tmp_path / "m")  # as that version wrote it
    loaded = NeuralPredictor.load(tmp_path / "m")
    assert loaded.params.fused_optimizer is False
    assert (loaded.predict_arrays(xv) != pred.predict_arrays(xv)).nnz == 0


def test_finetune_save_load_round_trip(tmp_path):
    esm_model, alphabet = tiny_esm()
    seqs, y = tiny_sequences()
    pred = NeuralPredictor(
        params(model="finetune", finetune_unfreeze_layers=1, batch_size=8, finetune_max_residues=16, max_epochs=1)
    )
    pred.fit_arrays(seqs[:16], y[:16], ASPECTS, val=(seqs[16:], y[16:]), esm_model=esm_model, alphabet=alphabet)
    pred.save(tmp_path)
    loaded = NeuralPredictor.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_arrays(seqs).toarray(), pred.predict_arrays(seqs).toarray())


def test_thresholds_chosen_on_validation_predictions():
    x, y, xv, yv = _data("simple")
    p = params(min_score=0.01)
    pred = NeuralPredictor(p)
    pred.fit_arrays(x, y, ASPECTS, val=(xv, yv))
    expected = choose_thresholds(
        pred.predict_arrays(xv), yv, ASPECTS, p.threshold_step, p.threshold_per_term, p.threshold_min_support
    )
    np.testing.assert_array_equal(pred.thresholds.term, expected.term)
    assert pred.thresholds.support.tolist() == np.diff(yv.tocsc().indptr).tolist()  # val counts, not train
    thresholded = pred.predict_arrays(xv, apply_thresholds=True)
    assert (thresholded.data >= pred.thresholds.term[thresholded.indices]).all()


def test_predict_scores_sparse_min_score_and_top_k():
    x, y = tiny_data()
    pred = NeuralPredictor(params())
    pred.fit_arrays(x, y, ASPECTS, val=(x, y))
    with torch.no_grad():
        dense = torch.sigmoid(pred.model(torch.from_numpy(x.astype(np.float32)))).numpy()
    s = predict_scores(pred.model, DenseInputs(x), batch_size=10, min_score=0.5)
    assert s.dtype == np.float32 and (s.data >= 0.5).all()
    np.testing.assert_allclose(s.toarray(), np.where(dense >= 0.5, dense, 0), rtol=1e-6)
    top = predict_scores(pred.model, DenseInputs(x), batch_size=10, min_score=0.0, top_k=2)
    assert (np.diff(top.indptr) == 2).all()
    np.testing.assert_allclose(np.sort(top.toarray(), axis=1)[:, -2:], np.sort(dense, axis=1)[:, -2:], rtol=1e-6)


def test_fit_without_val_uses_grouped_split():
    x, y = tiny_data()
    groups = np.repeat(np.arange(16), 4)
    p = params(val_group_by="groups", val_fraction=0.25)
    pred = NeuralPredictor(p)
    result = pred.fit_arrays(x, y, ASPECTS, groups=groups)
    _, val_idx = train_val_split(64, 0.25, p.val_seed, groups)
    assert result.best_epoch >= 1 and len(val_idx) == 16
    # thresholds saw only the held-out proteins
    np.testing.assert_array_equal(pred.thresholds.support, np.diff(y[val_idx].tocsc().indptr))
    with pytest.raises(ConfigError, match="groups"):
        NeuralPredictor(params(val_group_by="sequence")).fit_arrays(x, y, ASPECTS)


def test_load_missing_directory(tmp_path):
    with pytest.raises(MissingWeightsError):
        NeuralPredictor.load(tmp_path / "nothing")


def test_finetune_cross_fits_with_the_encoder_given_at_construction():
    """Cross-fitting calls fit(train) without an encoder: model=finetune uses the one passed as `esm=`, a fresh
    one per fold, so no fold starts from weights another fold trained."""
    from cafa_mlflow.go.labels import TermMatrix
    from cafa_mlflow.predictors.base import TrainSet
    from cafa_mlflow.predictors.crossfit import cross_fit

    seqs, y = tiny_sequences()
    ids = [f"P{i}" for i in range(len(seqs))]
    terms = [f"GO:{i:07d}" for i in range(y.shape[1])]
    train = TrainSet(ids, sequences=list(seqs), labels=TermMatrix(ids, terms, y), term_aspect=ASPECTS)
    p = params(model="finetune", finetune_unfreeze_layers=1, batch_size=8, finetune_max_residues=16, max_epochs=1)
    encoders = []

    def make() -> NeuralPredictor:
        encoders.append(tiny_esm())
        return NeuralPredictor(p, encoders[-1])

    oof = cross_fit(make, train, np.arange(len(ids)) % 2)
    assert oof.proteins == ids and oof.matrix.shape == (len(ids), len(terms))
    assert len(encoders) == 2 and encoders[0][0] is not encoders[1][0]
