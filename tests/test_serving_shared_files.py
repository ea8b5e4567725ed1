"""Model versions in a local artifact store share their large files (content-addressed hard links)."""

from __future__ import annotations

import os

import mlflow
import numpy as np
from predictor_fixtures import labels, tiny_ontology, write_obo

from cafa_mlflow.predictors.base import TrainSet
from cafa_mlflow.predictors.naive import NaivePredictor
from cafa_mlflow.serving import pyfunc, shared_files
from cafa_mlflow.serving.shared_files import share_files


def test_equal_files_become_one_and_different_ones_stay(tmp_path):
    one, two, shared = tmp_path / "v1", tmp_path / "v2", tmp_path / "shared"
    for folder in (one, two):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub/db.dmnd").write_bytes(b"A" * 4096)
        (folder / "small.json").write_text("{}")
    (two / "other.bin").write_bytes(b"B" * 4096)
    assert share_files(one, shared, min_bytes=1024) == 0  # the first copy is stored once, under its hash
    assert share_files(two, shared, min_bytes=1024) == 4096  # the second copy of db.dmnd is a link now
    assert os.path.samefile(one / "sub/db.dmnd", two / "sub/db.dmnd")
    assert not os.path.samefile(one / "small.json", two / "small.json")  # under min_bytes: not shared
    assert (two / "other.bin").stat().st_nlink == 2 and (two / "sub/db.dmnd").read_bytes() == b"A" * 4096
    assert share_files(two, shared, min_bytes=1024) == 0  # already shared: nothing to do
    assert not list(two.rglob("*.cafa-link"))


def test_two_logged_versions_store_the_member_once(tmp_path, monkeypatch):
    """log_go_model of the same predictor twice: its files are stored once (hard links), each version loads."""
    monkeypatch.setattr(shared_files, "MIN_SHARED_BYTES", 1)
    onto = tiny_ontology(tmp_path)
    y = labels(["A", "B"], [[onto.terms[0]], [onto.terms[1]]])
    folder = NaivePredictor(onto).fit(TrainSet.from_labels(y, embeddings=np.zeros((2, 2), np.float32)))
    saved = folder.save(tmp_path / "naive")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    root = tmp_path / "artifacts"
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("shared", artifact_location=str(root)))
    try:
        infos = []
        for _ in range(2):
            with mlflow.start_run():
                infos.append(
                    pyfunc.log_go_model(saved, write_obo(tmp_path), {"max_terms": 10, "sig": 3, "min_score": 0.001})
                )
        first, second = (
            next(root.glob(f"models/{info.model_id}/artifacts/artifacts/naive/checksums.json")) for info in infos
        )
        assert os.path.samefile(first, second)
        assert (root / shared_files.SHARED).is_dir()
        for info in infos:
            assert mlflow.pyfunc.load_model(info.model_uri).unwrap_python_model().predictor.kind == "naive"
    finally:
        mlflow.set_tracking_uri(None)
