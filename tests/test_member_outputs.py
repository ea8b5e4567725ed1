"""A member's outputs change together or not at all; an ensemble carries its members' encoder settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from predictor_fixtures import TERMS, labels, tiny_ontology

from cafa_mlflow.embed.settings import EmbedSettings
from cafa_mlflow.errors import InputError
from cafa_mlflow.predictors.base import Predictor, TrainSet
from cafa_mlflow.predictors.combine.blend import EnsemblePredictor
from cafa_mlflow.predictors.knn import KnnPredictor
from cafa_mlflow.predictors.naive import NaivePredictor
from cafa_mlflow.workflows.common import write_member

REPO = Path(__file__).resolve().parents[1]
BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS
SETTINGS = dict(
    layer=-1, strategy="balanced", window=1022, stride=256, pooling="mean", precision="fp32", max_residues=1022
)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def naive_outputs(tmp_path: Path, out: Path, proteins: list[str]) -> None:
    y = labels(["A", "B"], [[BP, BP1], [CC, CC3]])
    naive = NaivePredictor(tiny_ontology(tmp_path)).fit(TrainSet.from_labels(y))
    write_member(out, naive, {"val": naive.predict(proteins), "test": naive.predict(proteins)}, {"val_f_w_mean": 0.5})


# the child writes new outputs with a save that hangs after the predictions are written, and is killed there
CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_member_outputs import naive_outputs
from cafa_mlflow.predictors.naive import NaivePredictor
original = NaivePredictor.save_files
def slow(self, folder):
    original(self, folder)
    Path({flag!r}).write_text("saving")
    time.sleep(60)
NaivePredictor.save_files = slow
naive_outputs(Path({tmp!r}), Path({out!r}), ["X", "Y", "Z"])
"""


def test_kill_9_while_saving_the_model_leaves_the_previous_outputs_byte_identical(tmp_path):
    out = tmp_path / "predictions" / "naive"
    naive_outputs(tmp_path, out, ["P"])
    before = tree(out)
    assert set(before) >= {"val.npz", "test.npz", "metrics.json", "model/predictor.json"}
    flag = tmp_path / "saving.flag"
    code = CHILD.format(tests=str(REPO / "tests"), flag=str(flag), tmp=str(tmp_path / "child"), out=str(out))
    (tmp_path / "child").mkdir()
    child = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 60
    while not flag.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert flag.exists(), "the child never reached the model save"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert tree(out) == before  # new val/test predictions were written, but only into the unfinished folder
    naive_outputs(tmp_path, out, ["X", "Y", "Z"])  # the next run replaces everything at once
    assert tree(out) != before and tree(out)["metrics.json"] == before["metrics.json"]


def test_members_on_different_encoders_are_an_error_naming_both(tmp_path):
    y = labels(["A", "B"], [[BP, BP1], [CC, CC3]])
    train = TrainSet.from_labels(y, embeddings=np.array([[1, 0], [0, 1]], np.float32))
    a, b = KnnPredictor(k=1).fit(train), KnnPredictor(k=1).fit(train)
    a.embed = EmbedSettings(esm_model="esm2_t6_8M_UR50D", **SETTINGS)
    b.embed = EmbedSettings(esm_model="esm2_t12_35M_UR50D", **SETTINGS)
    with pytest.raises(InputError, match=r"members 'a' and 'b'.*esm2_t6_8M_UR50D.*esm2_t12_35M_UR50D"):
        EnsemblePredictor({"a": a, "b": b})


def test_the_saved_ensemble_carries_its_members_encoder(tmp_path):
    y = labels(["A", "B"], [[BP, BP1], [CC, CC3]])
    train = TrainSet.from_labels(y, embeddings=np.array([[1, 0], [0, 1]], np.float32))
    knn = KnnPredictor(k=1).fit(train)
    knn.embed = EmbedSettings(esm_model="esm2_t12_35M_UR50D", **SETTINGS)
    ensemble = EnsemblePredictor({"naive": NaivePredictor(tiny_ontology(tmp_path)).fit(train), "knn": knn})
    ensemble.weights, ensemble.term_aspect = {"naive": 0.5, "knn": 0.5}, {}
    loaded = Predictor.load(ensemble.save(tmp_path / "ensemble"))
    assert loaded.kind == "ensemble" and loaded.embed == knn.embed and loaded.inputs() == {"embedding"}
    with pytest.raises(Exception, match="esm2_t12_35M_UR50D.*esm2_t6_8M_UR50D"):
        EmbedSettings(esm_model="esm2_t6_8M_UR50D", **SETTINGS).require_same(loaded.embed, "the ensemble")
