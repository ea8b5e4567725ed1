"""`cafa predict`: the registered champion (naive + knn [+ homology]) scores a Kaggle-style FASTA
(`>ACC TAXON` headers) into a submission that passes validate_submission."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
from cafa_fixtures import forget_mlflow_run
from esm_fixtures import embed, split_args
from mlflow.tracking import MlflowClient
from predictor_fixtures import SEQUENCES, TERMS, labels, write_fasta, write_obo

from cafa_mlflow.embed import load_embeddings, make_tiny_esm
from cafa_mlflow.errors import InputError
from cafa_mlflow.go.labels import read_submission
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.submission import validate_submission
from cafa_mlflow.predictors.base import TrainSet
from cafa_mlflow.predictors.combine.blend import EnsemblePredictor
from cafa_mlflow.predictors.homology import HomologyPredictor
from cafa_mlflow.predictors.knn import KnnPredictor
from cafa_mlflow.predictors.naive import NaivePredictor
from cafa_mlflow.serving import model_loader, pyfunc
from cafa_mlflow.tracking import runs
from pipelines import predict

BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS
SETTINGS = dict(layer=-1, strategy="balanced", window=1022, stride=256, pooling="mean", max_residues=1022)
NAME = "cafa-predict-test"


@pytest.fixture
def champion(tmp_path, monkeypatch):
    forget_mlflow_run(monkeypatch)
    ckpt = str(make_tiny_esm(tmp_path / "esm2_tiny.pt", layers=1, dim=16, heads=2, seed=0))
    ids = ["HBA", "LYZ", "UBQ"]
    pool = write_fasta(tmp_path / "train.fasta", ids)
    emb = load_embeddings(embed(pool, ckpt, tmp_path / "emb", progress=False, device="cpu", **SETTINGS).cache_dir)
    y = labels(ids, [[BP, BP1, BP2], [MF, MF4], [CC, CC3]])
    train = TrainSet(ids=ids, embeddings=emb.vectors[np.array([emb.index()[i] for i in ids])], fasta=pool, labels=y)
    members = {"naive": NaivePredictor(load_obo(write_obo(tmp_path))).fit(train), "knn": KnnPredictor(k=2).fit(train)}
    if shutil.which("diamond"):
        members["homology"] = HomologyPredictor(tmp_path / "db", threads=1).fit(train)
    members["knn"].embed = split_args(ckpt, **SETTINGS)[0]
    onto = load_obo(write_obo(tmp_path))
    ensemble = EnsemblePredictor(members, onto)
    ensemble.weights = {a: {name: 1.0 / len(members) for name in members} for a in ("BPO", "CCO", "MFO")}
    ensemble.term_aspect = {t: onto.aspect[onto.index[t]] for t in TERMS}
    folder = ensemble.save(tmp_path / "ensemble")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("predict-test")
    with mlflow.start_run():
        info = pyfunc.log_go_model(folder, write_obo(tmp_path), {"max_terms": 1500, "sig": 3, "min_score": 0.001})
    version, promoted = runs.register_and_promote(info.model_uri, NAME, 0.5, "split0")
    assert promoted
    yield uri, set(members)
    mlflow.set_tracking_uri(None)


def test_predict_champion_to_valid_submission(tmp_path, champion):
    uri, members = champion
    query = tmp_path / "testsuperset.fasta"  # Kaggle's test header style: accession and taxon
    query.write_text("".join(f">Q{i} 9606\n{SEQUENCES[p]}\n" for i, p in enumerate(["HBB", "HBA", "UBQ"])))
    out = tmp_path / "sub" / "submission.tsv"
    predict.main(
        [
            "--fasta",
            str(query),
            "--out",
            str(out),
            "--tracking-uri",
            uri,
            "--tracking-registered-model",
            NAME,
            "--embed-out",
            str(tmp_path / "emb"),
            "--tracking-system-metrics",
            "false",
            "--tracking-experiment",
            "predict-test",
            "--batch-size",
            "2",
            "--threads",
            "1",
        ]
    )
    found = validate_submission(out, ontology=load_obo(write_obo(tmp_path)))
    assert not found.counts and found.n_proteins == 3
    sub = read_submission(out)
    assert sub.proteins == ["Q0", "Q1", "Q2"]
    # naive: the one BPO-annotated training protein gives BP frequency 1, so every query has BP >= 1 / n_members
    m = sub.reindex(terms=TERMS).matrix.toarray()
    assert (m[:, 0] >= round(1 / len(members), 3) - 1e-6).all()
    # the submission holds what the model predicts for the same input (same embedding settings)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    assert pyfunc.required_inputs(model) >= {"embedding"}
    runs = MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("predict-test").experiment_id], "tags.entry_point = 'predict'"
    )
    assert [a.path for a in MlflowClient().list_artifacts(runs[0].info.run_id, "submission")] == [
        "submission/submission.tsv"
    ]


def register_again(tmp_path, score: float) -> tuple[str, bool]:
    """Log the champion's saved ensemble folder once more and register it with `score`."""
    with mlflow.start_run():
        info = pyfunc.log_go_model(
            tmp_path / "ensemble", write_obo(tmp_path), {"max_terms": 1500, "sig": 3, "min_score": 0.001}
        )
    return runs.register_and_promote(info.model_uri, NAME, score, "split0")


def break_version(version: str) -> str:
    """Delete the predictor.json of a registered version's artifacts; returns that path."""
    client = MlflowClient()
    root = Path(client.get_model_version_download_uri(NAME, version).removeprefix("file://"))
    meta = next(root.rglob("predictor.json"))
    meta.unlink()
    return str(meta)


def test_a_version_with_missing_artifacts_is_named_with_working_advice(tmp_path, champion):
    uri, _ = champion
    newer, promoted = register_again(tmp_path, 0.6)  # version 2 becomes champion
    assert promoted and newer == "2"
    missing = break_version(newer)
    with pytest.raises(InputError) as err:
        model_loader.load_model(f"models:/{NAME}@champion")
    message = str(err.value)
    assert f"cannot load model {NAME} version 2 (alias champion)" in message and missing in message
    assert f"version 1 is complete: pass --model-uri models:/{NAME}/1" in message  # an advice that works
    assert model_loader.load_model(f"models:/{NAME}/1") is not None
    break_version("1")
    with pytest.raises(InputError, match=rf"no complete version of {NAME} is left: run `cafa ensemble`"):
        model_loader.load_model(f"models:/{NAME}@champion")
    # running the step as advised: its version takes the alias even with a lower score (the champion is broken)
    version, promoted = register_again(tmp_path, 0.1)
    assert promoted and model_loader.load_model(f"models:/{NAME}@champion") is not None


def test_a_model_path_whose_saved_files_are_damaged_is_named_whole(tmp_path):
    """--model-uri a folder: the one-line CafaError of a damaged file (its path and fix, often over 200
    characters) is kept whole; a library's long message is still cut to one short line."""
    damaged = tmp_path / ("deep-" * 30) / "reference.dmnd"
    cafa_err = InputError(f"{damaged}: damaged (sha256 checksum differs); run `cafa member --predictor reference`")
    line = model_loader.load_failure(str(tmp_path), cafa_err)
    assert len(str(cafa_err)) > 200 and str(cafa_err) in line and "\n" not in line
    foreign = model_loader.load_failure(str(tmp_path), OSError("x" * 500 + "\nsecond line"))
    assert "x" * 200 in foreign and "x" * 201 not in foreign and "second" not in foreign
