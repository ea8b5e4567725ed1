"""The ensemble's members predict side by side, and a served request's embedding runs meanwhile: a member that
reads vectors waits for them, a search member starts at once, and every member's scores are what it gives alone."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np
import pytest
from predictor_fixtures import UnsavedPredictor

from cafa_mlflow.errors import InputError
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.base import EMBEDDING, SEQUENCE, ProteinSet, TrainSet
from cafa_mlflow.predictors.combine.blend import EnsemblePredictor

WAIT_S = 10  # a deadlock or a sequential run fails the test after this, not the suite


class Probe(UnsavedPredictor):
    """Scores each protein with its first input; `meet` makes it wait for the other probes inside predict()."""

    kind = "probe"

    def __init__(self, needs: str, meet: threading.Barrier | None = None, started: threading.Event | None = None):
        self.needs, self.meet, self.started = needs, meet, started

    def inputs(self) -> set[str]:
        return {self.needs}

    def fit(self, train: TrainSet) -> Probe:
        return self

    def predict(self, proteins: ProteinSet) -> TermMatrix:
        if self.started is not None:
            self.started.set()
        if self.meet is not None:
            self.meet.wait(WAIT_S)  # BrokenBarrierError when the other member is not running at the same time
        if self.needs == EMBEDDING:
            values = np.asarray(proteins.embeddings, dtype=np.float32)[:, :1]
        else:
            values = np.array([[len(s) / 10] for s in proteins.sequences], dtype=np.float32)
        return TermMatrix(proteins.ids, ["GO:0000001"], values)


def proteins(embeddings) -> ProteinSet:
    return ProteinSet(["A", "B"], embeddings=embeddings, sequences=["MKV", "MKVLA"])


def test_members_predict_at_the_same_time():
    meet = threading.Barrier(2)
    ensemble = EnsemblePredictor({"a": Probe(SEQUENCE, meet), "b": Probe(SEQUENCE, meet)})
    scores = ensemble.predict_members(proteins(None))
    assert scores["a"].matrix.toarray().ravel().tolist() == pytest.approx([0.3, 0.5])
    assert not meet.broken


def test_a_search_member_starts_before_the_embeddings_exist():
    """The vectors are only set once the sequence member has started: run one after the other, this deadlocks."""
    vectors: Future = Future()
    started = threading.Event()
    ensemble = EnsemblePredictor({"knn": Probe(EMBEDDING), "search": Probe(SEQUENCE, started=started)})
    threading.Thread(target=lambda: started.wait(WAIT_S) and vectors.set_result(np.eye(2, dtype=np.float32))).start()
    scores = ensemble.predict_members(proteins(vectors))
    assert started.is_set()
    assert scores["knn"].matrix.toarray().ravel().tolist() == [1.0, 0.0]
    assert scores["search"].matrix.toarray().ravel().tolist() == pytest.approx([0.3, 0.5])


def test_concurrent_scores_equal_each_member_alone():
    vectors = np.array([[0.25, 1.0], [0.75, 0.0]], np.float32)
    members = {"knn": Probe(EMBEDDING), "search": Probe(SEQUENCE)}
    pending: Future = Future()
    pending.set_result(vectors)
    together = EnsemblePredictor(members).predict_members(proteins(pending))
    for name, member in members.items():
        alone = member.predict(proteins(vectors))
        assert (together[name].matrix != alone.matrix).nnz == 0 and together[name].proteins == alone.proteins


def test_an_embedding_error_reaches_the_caller_from_the_member_that_waits():
    failed: Future = Future()
    failed.set_exception(FileNotFoundError("put esm2_t6_8M_UR50D.pt into ~/.cache/torch/hub/checkpoints"))
    ensemble = EnsemblePredictor({"knn": Probe(EMBEDDING), "search": Probe(SEQUENCE)})
    with pytest.raises(FileNotFoundError, match="hub/checkpoints"):
        ensemble.predict_members(proteins(failed))


def test_a_pending_protein_set_resolves_and_takes_rows():
    pending: Future = Future()
    pending.set_result(np.arange(6, dtype=np.float32).reshape(3, 2))
    pset = ProteinSet(["A", "B", "C"], embeddings=pending, sequences=["M", "MK", "MKV"])
    assert pset.take([2, 0]).embeddings.tolist() == [[4.0, 5.0], [0.0, 1.0]]
    assert pset.resolved().embeddings.shape == (3, 2) and pset.resolved().sequences == ["M", "MK", "MKV"]
    short: Future = Future()
    short.set_result(np.zeros((2, 2), np.float32))
    with pytest.raises(InputError, match="2 embeddings rows for 3 protein ids"):
        ProteinSet(["A", "B", "C"], embeddings=short).resolved()
