"""Bad requests through MLflow's real scoring server app (`mlflow.pyfunc.scoring_server.init`, the FastAPI app
`mlflow models serve` runs), called over ASGI in this process: every class gets HTTP 400 and one line naming the
row or field, never a `stack_trace`, a dump of the request table or a server path; requests over
`serving.max_proteins` / `serving.max_residues` are refused before any work."""

from __future__ import annotations

import asyncio
import json
import os

import mlflow
import pandas as pd
import pytest
from predictor_fixtures import SEQUENCES
from test_serving_sequences import log_tiny_model

LIMITS = {"max_proteins": 3, "max_residues": 400}
GOOD = [{"protein": "Q_HBB", "sequence": SEQUENCES["HBB"]}, {"protein": "Q_UBQ", "sequence": SEQUENCES["UBQ"]}]
SERVING_FLAG = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"


def post(app, body: bytes | dict, content_type: str = "application/json") -> tuple[int, dict]:
    """(HTTP status, JSON body) of POST /invocations, sent to the ASGI app directly."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def run() -> tuple[int, bytes]:
        sent, pending = [], [{"type": "http.request", "body": raw, "more_body": False}]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/invocations",
            "raw_path": b"/invocations",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(raw)).encode())],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 80),
        }

        async def receive():
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")

    status, payload = asyncio.run(run())
    return status, json.loads(payload or b"{}")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The scoring server app of a naive + knn model on a tiny local encoder, logged with small limits."""
    from mlflow.pyfunc import scoring_server

    tmp = tmp_path_factory.mktemp("requests")
    _, info = log_tiny_model(tmp, "requests", False, artifacts=tmp / "artifacts", serving=LIMITS)
    before = os.environ.get(SERVING_FLAG)
    model = mlflow.pyfunc.load_model(info.model_uri)  # scoring_server is imported: the model guards it
    yield scoring_server.init(model), model
    mlflow.set_tracking_uri(None)
    if before is None:
        os.environ.pop(SERVING_FLAG, None)  # init() marks the process as a server
    else:
        os.environ[SERVING_FLAG] = before


def test_a_good_request_answers_what_the_model_predicts(app):
    server, model = app
    status, body = post(server, {"dataframe_records": GOOD})
    assert status == 200
    expected = model.predict(pd.DataFrame(GOOD))
    pd.testing.assert_frame_equal(pd.DataFrame(body["predictions"]), expected, check_dtype=False)


def test_orient_list_is_the_same_answer_one_list_per_column(app):
    server, model = app
    _, records = post(server, {"dataframe_records": GOOD})
    status, columns = post(server, {"dataframe_records": GOOD, "params": {"orient": "list"}})
    assert status == 200 and list(columns["predictions"]) == ["protein", "term", "score"]
    pd.testing.assert_frame_equal(pd.DataFrame(columns["predictions"]), pd.DataFrame(records["predictions"]))
    _, with_evidence = post(server, {"dataframe_records": GOOD, "params": {"orient": "list", "evidence": True}})
    assert len(with_evidence["predictions"]["evidence"]) == len(records["predictions"]) > 0


SEQ = SEQUENCES["UBQ"]
BAD = {
    "null protein id": ({"dataframe_records": [{"protein": None, "sequence": SEQ}]}, "row 1: `protein` is null"),
    "number as protein id": ({"dataframe_records": [{"protein": 7, "sequence": SEQ}]}, "row 1: `protein` is 7"),
    "id with a space": (
        {"dataframe_records": [GOOD[0], {"protein": "sp P1 x", "sequence": SEQ}]},
        "row 2: protein id 'sp P1 x' is empty or holds whitespace",
    ),
    "number as sequence": (
        {"dataframe_records": [GOOD[0], {"protein": "A", "sequence": 12345}]},
        "row 2 (protein 'A'): `sequence` is 12345, not a string",
    ),
    "null sequence": ({"dataframe_records": [{"protein": "A", "sequence": None}]}, "`sequence` is null"),
    "missing sequence column": ({"dataframe_records": [{"protein": "A"}]}, "lacks the column `sequence`"),
    "missing protein column": (
        {"dataframe_split": {"columns": ["sequence"], "data": [[SEQ]]}},
        "lacks the column `protein`",
    ),
    "empty record list": ({"dataframe_records": []}, "holds no proteins"),
    "empty split": ({"dataframe_split": {"columns": ["protein", "sequence"], "data": []}}, "holds no proteins"),
    "no table": ({"inputs": [SEQ]}, "exactly one of `dataframe_split` or `dataframe_records`"),
    "ragged split": (
        {"dataframe_split": {"columns": ["protein", "sequence"], "data": [["A"]]}},
        "every row of `data` must be a list of 2 values",
    ),
    "params not an object": ({"dataframe_records": GOOD, "params": "evidence"}, "`params` must be an object"),
    "params.evidence not a boolean": (
        {"dataframe_records": GOOD, "params": {"evidence": "yes"}},
        "params.evidence is 'yes'; use true or false",
    ),
    "params.top zero": ({"dataframe_records": GOOD, "params": {"top": 0}}, "params.top is 0"),
    "unknown param": ({"dataframe_records": GOOD, "params": {"topk": 2}}, "'topk' is not a parameter"),
    "params.orient unknown": (
        {"dataframe_records": GOOD, "params": {"orient": "split"}},
        "params.orient is 'split'; use \"records\"",
    ),
    "repeated id": ({"dataframe_records": [GOOD[0], GOOD[0]]}, "'Q_HBB' appears twice"),
    "bad letters": ({"dataframe_records": [{"protein": "A", "sequence": "MK1V"}]}, "cannot encode: '1'"),
    "too many proteins": (
        {"dataframe_records": [{"protein": f"P{i}", "sequence": "MKV"} for i in range(4)]},
        "4 proteins, more than serving.max_proteins=3",
    ),
    "too many residues": (
        {"dataframe_records": [{"protein": "A", "sequence": "M" * 401}]},
        "401 residues, more than serving.max_residues=400",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_request_is_one_line_http_400(app, case):
    server, _ = app
    request, expected = BAD[case]
    status, body = post(server, request)
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE", body
    message = body["message"]
    assert expected in message, message
    assert "stack_trace" not in body and "\n" not in message and "Traceback" not in message
    assert "Failed to predict" not in message and "/tmp" not in message  # no request dump, no server path


def test_invalid_json_is_one_line_http_400(app):
    server, _ = app
    status, body = post(server, b'{"dataframe_records": [')
    assert status == 400 and body["message"].startswith("the request body is not valid JSON")
    assert "stack_trace" not in body and "\n" not in body["message"]


def test_oversized_request_is_refused_before_any_work(app, monkeypatch):
    """The limits are checked before MLflow parses the table: the model's predict is never called."""
    server, model = app
    called = []
    monkeypatch.setattr(model.unwrap_python_model(), "parse_input", lambda frame: called.append(frame))
    status, body = post(server, {"dataframe_records": [{"protein": f"P{i}", "sequence": "MKV"} for i in range(50)]})
    assert status == 400 and "serving.max_proteins=3" in body["message"] and not called


def test_an_unexpected_fault_is_one_line_without_stack_trace(app, monkeypatch):
    server, model = app

    def broken(proteins):
        raise KeyError("internal")

    monkeypatch.setattr(model.unwrap_python_model(), "predict_matrix", broken)
    status, body = post(server, {"dataframe_records": GOOD})
    assert status == 500 and "stack_trace" not in body and "\n" not in body["message"]
    assert body["message"].startswith("the model failed on this request (KeyError")
