"""GoModel: log naive + knn members to a temporary sqlite store, load with mlflow.pyfunc, predict."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from predictor_fixtures import TERMS, labels, tiny_ontology, write_obo

from cafa_mlflow.config.schema import SubmissionParams
from cafa_mlflow.embed.settings import EmbedSettings
from cafa_mlflow.errors import InputError
from cafa_mlflow.predictors.base import TrainSet
from cafa_mlflow.predictors.combine.blend import EnsemblePredictor
from cafa_mlflow.predictors.knn import KnnPredictor
from cafa_mlflow.predictors.naive import NaivePredictor
from cafa_mlflow.serving import pyfunc

BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS
EMBED = {
    "esm_model": "esm2_t6_8M_UR50D",
    "layer": -1,
    "strategy": "balanced",
    "window": 1022,
    "stride": 256,
    "pooling": "mean",
    "max_residues": 1022,
    "precision": "fp32",
    "toks_per_batch": 4096,
}
SUBMISSION = {"max_terms": 1500, "sig": 3, "min_score": 0.001}
WEIGHTS = {"BPO": {"naive": 0.5, "knn": 0.5}, "CCO": {"naive": 0.0, "knn": 1.0}, "MFO": {"naive": 1.0, "knn": 0.0}}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving")
    onto = tiny_ontology(tmp)
    y = labels(["A", "B", "C"], [[BP, BP1], [BP, BP1, BP2, MF, MF4], [CC, CC3]])
    train = TrainSet.from_labels(y, embeddings=np.array([[1, 0], [0.6, 0.8], [0, 1]], np.float32))
    knn = KnnPredictor(k=2).fit(train)
    knn.embed = EmbedSettings.from_block(EMBED)
    ensemble = EnsemblePredictor({"naive": NaivePredictor(onto).fit(train), "knn": knn}, onto)
    ensemble.weights, ensemble.term_aspect = WEIGHTS, {t: onto.aspect[onto.index[t]] for t in TERMS}
    folder = ensemble.save(tmp / "ensemble")
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    mlflow.set_experiment("serving-test")
    with mlflow.start_run():
        info = pyfunc.log_go_model(folder, write_obo(tmp), SUBMISSION)
    yield info
    mlflow.set_tracking_uri(None)


def test_metadata_names_inputs_and_embedding_settings(logged):
    assert pyfunc.required_inputs(logged.model_uri) == {"embedding"}
    settings = pyfunc.embed_settings(logged.model_uri)
    assert (
        settings == EmbedSettings.from_block(EMBED).to_dict() and "toks_per_batch" not in settings
    )  # no vector change
    inputs = {c.name: c.required for c in logged.signature.inputs.inputs}
    # sequence in (the model embeds it); a model that reads no sequence also takes embeddings instead
    assert inputs == {"protein": True, "sequence": False, "embedding": False}
    assert [p.name for p in logged.signature.params.params] == ["evidence", "top", "orient"]


def test_pyfunc_predicts_weighted_consistent_rounded_scores(logged):
    model = mlflow.pyfunc.load_model(logged.model_uri)
    frame = pd.DataFrame({"protein": ["Q1", "Q2"], "embedding": [[0.8, 0.6], np.array([0.0, 1.0], np.float32)]})
    out = model.predict(frame)
    assert list(out.columns) == ["protein", "term", "score"]
    got = {(p, t): s for p, t, s in out.itertuples(index=False)}
    # Q1: neighbours B (cos 0.96) and A (0.8); naive: BPO of A, B -> BP 1, BP1 1, BP2 0.5; MFO of B -> 1
    wb = 0.96 / 1.76
    assert got[("Q1", BP2)] == round(0.5 * 0.5 + 0.5 * wb, 3)
    assert got[("Q1", BP)] == 1.0 and got[("Q1", MF4)] == 1.0 and ("Q1", CC) not in got
    # Q2: neighbours C (1.0) and B (0.8) -> CCO from knn only: 1 / 1.8
    assert got[("Q2", CC3)] == round(1 / 1.8, 3) and got[("Q2", CC)] == got[("Q2", CC3)]
    assert got[("Q2", BP2)] == round(0.25 + 0.5 * 0.8 / 1.8, 3)
    for _protein, part in out.groupby("protein", sort=False):
        assert part["score"].is_monotonic_decreasing  # sorted, highest first
    assert list(out["protein"].drop_duplicates()) == ["Q1", "Q2"]


def test_missing_input_column_is_a_clear_error(logged):
    model = mlflow.pyfunc.load_model(logged.model_uri).unwrap_python_model()
    with pytest.raises(InputError, match="lacks the column `sequence`.*or an `embedding`"):
        model.parse_input(pd.DataFrame({"protein": ["Q1"]}))


def test_single_neural_member_as_a_train_run_logs_it(tmp_path, logged):  # logged: the module's sqlite store
    import scipy.sparse as sp
    from neural_fixtures import params, tiny_data

    from cafa_mlflow.go.finalize import finalize
    from cafa_mlflow.go.labels import TermMatrix
    from cafa_mlflow.predictors.neural import NeuralPredictor

    onto = tiny_ontology(tmp_path)
    x, y = tiny_data(n=48, dim=6, n_terms=len(TERMS))
    net = NeuralPredictor(params(max_epochs=1, min_score=0.0))
    net.fit_arrays(x, y, onto.aspect[[onto.index[t] for t in TERMS]], val=(x[:8], y[:8]), terms=TERMS)
    net.embed = EmbedSettings.from_block(EMBED)
    with mlflow.start_run():
        info = pyfunc.log_go_model(net.save(tmp_path / "neural"), write_obo(tmp_path), SUBMISSION)
    out = mlflow.pyfunc.load_model(info.model_uri).predict(
        pd.DataFrame({"protein": ["a", "b"], "embedding": list(x[:2].astype(np.float32))})
    )
    expected = finalize(
        TermMatrix(["a", "b"], TERMS, sp.csr_matrix(net.predict_arrays(x[:2]))), onto, SubmissionParams(**SUBMISSION)
    )
    got = TermMatrix.from_frame(out, proteins=["a", "b"], terms=expected.terms)
    np.testing.assert_allclose(got.matrix.toarray(), expected.matrix.toarray(), rtol=1e-6)
    assert pyfunc.required_inputs(info.model_uri) == {"embedding"} and len(out) == expected.matrix.nnz


def test_hub_encoder_offline_is_a_one_line_server_error(logged, tmp_path, monkeypatch):
    """A fair-esm name stays a name: offline and not in the hub cache, a sequence request gets today's
    message naming the file and folder, as a one-line HTTP 500 (the request itself is fine)."""
    import urllib.error

    import esm
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(esm.pretrained, "load_hub_workaround", offline)
    model = mlflow.pyfunc.load_model(logged.model_uri)
    with pytest.raises(MlflowException) as caught:
        model.predict(pd.DataFrame({"protein": ["Q1"], "sequence": ["MKTAYIAKQR"]}))
    err = caught.value
    assert err.get_http_status_code() == 500 and "\n" not in err.message
    assert "esm2_t6_8M_UR50D.pt" in err.message and str(tmp_path / "hub") in err.message


def test_logged_as_code_with_its_blocks_in_model_config(logged):
    """Models-from-code: MLflow builds the model by running model_code.py (no pickle); the params blocks it answers
    with come from the logged model_config."""
    from mlflow.models import Model

    conf = Model.load(logged.model_uri).flavors["python_function"]
    assert conf["model_code_path"].endswith("model_code.py") and "python_model" not in conf
    assert conf["config"]["submission"] == SUBMISSION
    inner = mlflow.pyfunc.load_model(logged.model_uri).unwrap_python_model()
    assert inner.submission == SubmissionParams.from_dict(SUBMISSION)


def test_model_config_caps_the_answer(logged):
    """The submission block of model_config is what the loaded model applies: max_terms 2 keeps two terms."""
    capped = {**SUBMISSION, "max_terms": 2}
    model = mlflow.pyfunc.load_model(logged.model_uri, model_config={"submission": capped})
    out = model.predict(pd.DataFrame({"protein": ["Q1"], "embedding": [[0.8, 0.6]]}))
    assert len(out) == 2 and list(out["score"]) == [1.0, 1.0]


def test_a_model_pickled_by_an_older_version_still_loads(tmp_path, logged):  # logged: the module's store
    """Versions registered before models-from-code hold a pickled GoModel that carries its own blocks."""
    folder = mlflow.pyfunc.load_model(logged.model_uri).unwrap_python_model()
    artifacts = {"obo": str(write_obo(tmp_path)), "predictor": str(folder.predictor.save(tmp_path / "ensemble"))}
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="old", python_model=pyfunc.GoModel({**SUBMISSION, "max_terms": 3}), artifacts=artifacts
        )
    model = mlflow.pyfunc.load_model(info.model_uri)
    out = model.predict(pd.DataFrame({"protein": ["Q1"], "embedding": [[0.8, 0.6]]}))
    assert model.unwrap_python_model().submission.max_terms == 3 and len(out) == 3
