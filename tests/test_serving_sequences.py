"""The logged model takes protein + sequence only: it embeds with the settings its members were fitted on,
carries its local encoder, rejects bad requests with one line (HTTP 400 class), and explains its scores."""

from __future__ import annotations

import json
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
from esm_fixtures import embed, split_args
from mlflow.exceptions import MlflowException
from predictor_fixtures import SEQUENCES, TERMS, labels, write_fasta, write_obo

from cafa_mlflow.embed import load_embeddings, make_tiny_esm
from cafa_mlflow.embed.resolve import pooled_rows
from cafa_mlflow.errors import InputError
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.predictors.base import TrainSet
from cafa_mlflow.predictors.combine.blend import EnsemblePredictor
from cafa_mlflow.predictors.homology import HomologyPredictor
from cafa_mlflow.predictors.knn import KnnPredictor
from cafa_mlflow.predictors.naive import NaivePredictor
from cafa_mlflow.serving import pyfunc

BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS
SETTINGS = dict(layer=-1, strategy="balanced", window=1022, stride=256, pooling="mean", max_residues=1022)
SUBMISSION = {"max_terms": 1500, "sig": 3, "min_score": 0.001}
TRAIN = ["HBA", "LYZ", "UBQ"]
needs_diamond = pytest.mark.skipif(shutil.which("diamond") is None, reason="DIAMOND not installed")


def fit_ensemble(tmp, ckpt, homology: bool):
    pool = write_fasta(tmp / "train.fasta", TRAIN)
    emb = load_embeddings(embed(pool, ckpt, tmp / "emb", progress=False, device="cpu", **SETTINGS).cache_dir)
    y = labels(TRAIN, [[BP, BP1, BP2], [MF, MF4], [CC, CC3]])
    train = TrainSet(ids=TRAIN, embeddings=pooled_rows(emb, TRAIN, "train"), fasta=pool, labels=y)
    onto = load_obo(write_obo(tmp))
    members = {"naive": NaivePredictor(onto).fit(train), "knn": KnnPredictor(k=2).fit(train)}
    if homology:
        members["homology"] = HomologyPredictor(tmp / "db", threads=1).fit(train)
    members["knn"].embed = split_args(ckpt, **SETTINGS)[0]
    ensemble = EnsemblePredictor(members, onto)
    ensemble.weights = {a: {name: 1.0 / len(members) for name in members} for a in ("BPO", "CCO", "MFO")}
    ensemble.term_aspect = {t: onto.aspect[onto.index[t]] for t in TERMS}
    return ensemble.save(tmp / "ensemble")


def log_tiny_model(tmp, experiment: str, homology: bool, artifacts=None, **log_kwargs):
    """fit_ensemble on a local tiny encoder, logged in a run of `experiment` in the store `tmp/mlflow.db`
    (artifacts under `artifacts` when given); (encoder checkpoint, ModelInfo)."""
    ckpt = str(make_tiny_esm(tmp / "enc" / "esm2_tiny.pt", layers=1, dim=16, heads=2, seed=0))
    folder = fit_ensemble(tmp, ckpt, homology=homology)
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    if artifacts is None:
        mlflow.set_experiment(experiment)
    else:
        mlflow.set_experiment(experiment_id=mlflow.create_experiment(experiment, artifact_location=str(artifacts)))
    with mlflow.start_run():
        return ckpt, pyfunc.log_go_model(folder, write_obo(tmp), SUBMISSION, **log_kwargs)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A naive + knn (+ homology) ensemble on a local tiny encoder, logged to a private store."""
    tmp = tmp_path_factory.mktemp("served")
    has_diamond = shutil.which("diamond") is not None
    ckpt, info = log_tiny_model(tmp, "serving-sequences", has_diamond, embed_runtime={"toks_per_batch": 4096})
    yield tmp, ckpt, info
    mlflow.set_tracking_uri(None)


QUERY = pd.DataFrame({"protein": ["Q_HBB", "Q_UBQ"], "sequence": [SEQUENCES["HBB"], SEQUENCES["UBQ"]]})


def test_signature_is_protein_and_sequence(served):
    _, _, info = served
    inputs = {c.name: c.required for c in info.signature.inputs.inputs}
    assert inputs == {"protein": True, "sequence": False, "embedding": False}  # sequence: checked by the model
    request = pyfunc.model_metadata(info.model_uri)["request"]
    assert request == {"required": ["protein", "sequence"], "optional": ["embedding"]}


def test_sequence_only_request_equals_cached_embeddings(served, tmp_path):
    """Embedded inside the model == embedded by `cafa embed` into the cache (the vectors `cafa predict` uses)."""
    tmp, ckpt, info = served
    model = mlflow.pyfunc.load_model(info.model_uri)
    out = model.predict(QUERY)
    assert set(out["protein"]) == {"Q_HBB", "Q_UBQ"} and (out["score"] > 0).all()
    fasta = tmp_path / "q.fasta"
    fasta.write_text("".join(f">{p}\n{s}\n" for p, s in zip(QUERY["protein"], QUERY["sequence"])))
    emb = load_embeddings(embed(fasta, ckpt, tmp_path / "emb", progress=False, device="cpu", **SETTINGS).cache_dir)
    inner = model.unwrap_python_model()
    vectors = inner.embedder(list(QUERY["protein"]), list(QUERY["sequence"]))
    np.testing.assert_array_equal(vectors, pooled_rows(emb, list(QUERY["protein"]), "q"))
    with_vectors = QUERY.assign(embedding=list(vectors))
    pd.testing.assert_frame_equal(model.predict(with_vectors), out)


@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"protein": ["A"]}), "lacks the column `sequence`"),
        (pd.DataFrame({"protein": ["A"], "sequence": [""]}), "(protein 'A'): empty sequence"),
        (pd.DataFrame({"protein": ["A"], "sequence": ["MKV1Q"]}), "(protein 'A'): letters ESM-2 cannot encode: '1'"),
        (pd.DataFrame({"protein": ["A", "A"], "sequence": ["MKV", "MKV"]}), "'A' appears twice"),
    ],
)
def test_bad_requests_are_one_line_invalid_parameter(served, frame, message):
    _, _, info = served
    model = mlflow.pyfunc.load_model(info.model_uri)
    with pytest.raises(MlflowException) as caught:
        model.predict(frame)
    err = caught.value
    assert message in err.message and "\n" not in err.message
    assert err.get_http_status_code() == 400 and isinstance(err, InputError)  # `cafa` prints it as one line


def test_model_version_is_self_contained(served, tmp_path):
    """Only the model's artifacts, copied elsewhere, with the training files and the checkpoint gone."""
    tmp, ckpt, info = served
    before = mlflow.pyfunc.load_model(info.model_uri).predict(QUERY)
    copy = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "elsewhere"))
    assert pyfunc.embed_settings(copy)["esm_model"] == ckpt  # what it was fitted on, for the record
    moved = tmp / "moved"
    moved.mkdir()
    for name in ("enc", "ensemble", "db", "train.fasta", "emb"):  # every file the fit used
        if (tmp / name).exists():
            shutil.move(str(tmp / name), str(moved / name))
    try:
        model = mlflow.pyfunc.load_model(copy)
        assert model.unwrap_python_model().settings.esm_model.startswith(copy)
        pd.testing.assert_frame_equal(model.predict(QUERY), before)
    finally:
        for path in moved.iterdir():
            shutil.move(str(path), str(tmp / path.name))


@needs_diamond
def test_evidence_of_a_query_whose_only_hit_carries_the_term(served):
    """HBB's one DIAMOND hit among the training proteins is HBA, the only carrier of BP2."""
    _, _, info = served
    model = mlflow.pyfunc.load_model(info.model_uri)
    query = pd.DataFrame({"protein": ["Q_HBB"], "sequence": [SEQUENCES["HBB"]]})
    out = model.predict(query, params={"evidence": True, "top": 3})
    plain = model.predict(query)
    pd.testing.assert_frame_equal(out[["protein", "term", "score"]], plain)  # evidence changes no score
    row = out.set_index("term").loc[BP2]
    ev = json.loads(row["evidence"])
    homology = [s for s in ev["support"] if s["member"] == "homology"]
    assert [s["protein"] for s in homology] == ["HBA"]
    hits = model.unwrap_python_model().predictor.members["homology"].hits  # what DIAMOND reported
    hit = hits[(hits["qseqid"] == "Q_HBB") & (hits["sseqid"] == "HBA")].iloc[0]
    assert (homology[0]["identity"], homology[0]["evalue"], homology[0]["bitscore"]) == (
        hit["pident"],
        hit["evalue"],
        hit["bitscore"],
    )
    assert ev["members"]["homology"] == 1.0 and ev["naive_prior"] == 1.0 and ev["score"] == row["score"]
    assert ev["propagated_from"] is None
    assert ev["score"] == pytest.approx(
        np.mean([ev["members"].get(m, 0.0) for m in ("naive", "knn", "homology")]), abs=1e-3
    )


def test_evidence_names_the_child_a_parent_took_its_score_from(tmp_path):
    """knn fitted on a leaf only (unpropagated): the parent's score comes from GO-consistency."""
    train = TrainSet.from_labels(labels(["T1"], [[MF5]]), embeddings=np.array([[1.0, 0.0]], np.float32))
    knn = KnnPredictor(k=1).fit(train)
    knn.save(tmp_path / "knn")
    model = pyfunc.GoModel(SUBMISSION).load_artifacts({"obo": write_obo(tmp_path), "predictor": tmp_path / "knn"})
    frame = pd.DataFrame({"protein": ["Q"], "embedding": [np.array([0.8, 0.6], np.float32)]})
    out = model.predict(None, frame, params={"evidence": True}).set_index("term")
    leaf, parent = json.loads(out.loc[MF5, "evidence"]), json.loads(out.loc[MF4, "evidence"])
    assert leaf["support"] == [{"member": "knn", "protein": "T1", "similarity": 0.8}]
    assert leaf["propagated_from"] is None and leaf["members"] == {"knn": 1.0}
    assert parent["propagated_from"] == {"term": MF5, "score": 1.0} and parent["members"] == {}
    assert parent["naive_prior"] is None


@pytest.mark.slow
def test_mlflow_models_serve_answers_sequences_like_cafa_predict(served, tmp_path):
    """`mlflow models serve` on 127.0.0.1: a sequence-only request gives what `cafa predict` writes for the
    same proteins; bad requests get HTTP 400 with the one-line message, never a 500."""
    from cafa_mlflow.go.labels import TermMatrix, read_submission
    from cafa_mlflow.serving.server import serve
    from pipelines import predict

    tmp, _, info = served
    model_dir = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "model"))
    fasta = tmp_path / "queries.fasta"
    fasta.write_text("".join(f">{p}\n{s}\n" for p, s in zip(QUERY["protein"], QUERY["sequence"])))
    out = tmp_path / "submission.tsv"
    tracking = ["--tracking-uri", f"sqlite:///{tmp}/mlflow.db", "--tracking-system-metrics", "false"]
    predict.main(
        ["--fasta", str(fasta), "--out", str(out), "--model-uri", model_dir, "--threads", "1"]
        + ["--embed-out", str(tmp_path / "emb")]
        + tracking
    )
    batch = read_submission(out)
    split = {"dataframe_split": {"columns": ["protein", "sequence"], "data": QUERY.values.tolist()}}
    bad = {
        "missing column": {"dataframe_records": [{"protein": "A"}]},
        "empty sequence": {"dataframe_records": [{"protein": "A", "sequence": ""}]},
        "letters": {"dataframe_records": [{"protein": "A", "sequence": "MK1V"}]},
        "duplicate ids": {
            "dataframe_records": [{"protein": "A", "sequence": "MKV"}, {"protein": "A", "sequence": "MKV"}]
        },
    }
    with serve(model_dir) as server:
        status, body = server.post(split)
        records = {"dataframe_records": QUERY.to_dict("records"), "params": {"evidence": True}}
        status_ev, body_ev = server.post(records)
        answers = {name: server.post(request) for name, request in bad.items()}
    assert status == 200 and status_ev == 200
    served_out = pd.DataFrame(body["predictions"])
    got = TermMatrix.from_frame(served_out, proteins=batch.proteins, terms=batch.terms)
    np.testing.assert_allclose(got.matrix.toarray(), batch.matrix.toarray(), rtol=0, atol=1e-9)
    assert len(served_out) == batch.matrix.nnz
    assert all(json.loads(row["evidence"])["score"] == row["score"] for row in body_ev["predictions"])
    for name, (code, answer) in answers.items():
        assert code == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE", (name, code, answer)
    assert answers["missing column"][1]["message"].startswith("the request lacks the column `sequence`")
    assert all("\n" not in answer["message"] for _, answer in answers.values())  # no request dump
    assert "appears twice" in answers["duplicate ids"][1]["message"]


@needs_diamond
def test_cafa_predict_evidence_file_and_cafa_explain(served, tmp_path, monkeypatch, capsys):
    from cafa_mlflow.go.labels import read_submission
    from pipelines import cli, predict

    tmp, _, info = served
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
    fasta = tmp_path / "queries.fasta"
    fasta.write_text("".join(f">{p}\n{s}\n" for p, s in zip(QUERY["protein"], QUERY["sequence"])))
    out, evidence = tmp_path / "submission.tsv", tmp_path / "evidence.tsv"
    predict.main(
        ["--fasta", str(fasta), "--out", str(out), "--evidence", str(evidence), "--model-uri", info.model_uri]
        + ["--threads", "1", "--embed-out", str(tmp_path / "emb"), "--tracking-system-metrics", "false"]
    )
    table = pd.read_csv(evidence, sep="\t")
    sub = read_submission(out)
    assert len(table) == sub.matrix.nnz and list(table.columns) == ["protein", "term", "score", "evidence"]
    row = table[(table["protein"] == "Q_HBB") & (table["term"] == BP2)].iloc[0]
    assert [s["protein"] for s in json.loads(row["evidence"])["support"] if s["member"] == "homology"] == ["HBA"]

    capsys.readouterr()
    code = cli.main(
        ["explain", "--fasta", str(fasta), "--protein", "Q_HBB", "--term", BP2, "--model-uri", info.model_uri]
    )
    shown = capsys.readouterr().out
    assert code == 0 and f"{BP2} bp two  score" in shown and "homology: HBA  identity" in shown, shown
    assert "naive prior: 1" in shown
    assert cli.main(["explain", "--fasta", str(fasta), "--protein", "NOPE", "--model-uri", info.model_uri]) == 2
    assert "no protein 'NOPE'" in capsys.readouterr().err


@pytest.mark.parametrize("strategy", ["balanced", "sliding_window", "chunks"])
@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_in_memory_embedding_equals_the_cache_for_every_strategy(tmp_path, strategy, pooling):
    """The served model's embedder splits long proteins, batches by tokens and pools exactly as `cafa embed`
    (chunk caches: the mean of a protein's chunks, as `cafa predict` feeds them)."""
    from esm_fixtures import SEQS
    from esm_fixtures import write_fasta as write_seqs

    from cafa_mlflow.embed.sequences import SequenceEmbedder

    ckpt = make_tiny_esm(tmp_path / "esm2_tiny.pt", layers=1, dim=16, heads=2, seed=1)
    kw = dict(strategy=strategy, pooling=pooling, window=8, stride=3, max_residues=20, layer=-1)
    settings, _ = split_args(ckpt, **kw)
    fasta = write_seqs(tmp_path / "p.fasta", SEQS)
    cache = embed(fasta, ckpt, tmp_path / "emb", progress=False, device="cpu", toks_per_batch=64, **kw).cache_dir
    ids = list(SEQS)
    got = SequenceEmbedder(settings, toks_per_batch=64, device="cpu")(ids, [SEQS[i] for i in ids])
    np.testing.assert_array_equal(got, pooled_rows(load_embeddings(cache), ids, "cache"))
