"""Checks of a request to the served model, each failure one line naming the row or field and the fix.

`RequestError` is an MlflowException with INVALID_PARAMETER_VALUE (HTTP 400 from `mlflow models serve`) that is
also an InputError (one line from `cafa`); `ModelError` is a fault of the model's environment (HTTP 500).

MLflow's scoring server checks the request against the model's signature, and rewrites any error the model
raises as `Failed to predict data '<the whole request table>'. Error: ...`, before and after the model's own
code runs; bad params, for one, never reach the model. `guard_scoring_server` therefore wraps the server's
`invocations` (the function its /invocations route calls) once the model is loaded in a server: the request's
JSON, params and size are checked there first (a refused request costs no parsing into a table, no embedding,
no search), and any error MLflow itself raises afterwards is cut to its last one-line reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

from cafa_mlflow.config.schema import ServingParams
from cafa_mlflow.errors import CafaError, InputError, MissingToolError
from cafa_mlflow.io.fasta import ESM_LETTERS, REPLACED_LETTERS

FORMATS = ("dataframe_split", "dataframe_records")
PARAMS = {
    "evidence": "true or false",
    "top": "a whole number >= 1",
    "orient": '"records" (one object per row, the default) or "list" (one list per column)',
}
ORIENTS = ("records", "list")  # pandas' names: DataFrame.to_dict(orient=...)
MAX_REASON = 300  # characters of an error MLflow raised that a client is shown
log = logging.getLogger(__name__)


class OneLine:
    """An MlflowException whose message stays one line: MLflow's scoring server prefixes a model's error with a
    dump of the whole request (`Failed to predict data '<DataFrame>'. Error: ...`); that rewrite is ignored, so
    the client reads only what the model said."""

    @property
    def message(self) -> str:
        return self._line

    @message.setter
    def message(self, value: str) -> None:
        line = " ".join(str(value).split())
        if not (hasattr(self, "_line") and line.endswith(self._line)):  # the server's prefixed copy is dropped
            self._line = line


class RequestError(OneLine, InputError, MlflowException):
    """A bad model input: one line, HTTP 400 when served (INVALID_PARAMETER_VALUE), exit 2 from `cafa`."""

    def __init__(self, message: str) -> None:
        MlflowException.__init__(self, " ".join(str(message).split()), error_code=INVALID_PARAMETER_VALUE)


class ModelError(OneLine, CafaError, MlflowException):
    """A fault of the model's environment while serving (an encoder or DIAMOND missing): one line, HTTP 500."""

    def __init__(self, message: str) -> None:
        MlflowException.__init__(self, " ".join(str(message).split()), error_code=INTERNAL_ERROR)


class SystemRequirementError(OneLine, MissingToolError, MlflowException):
    """The machine lacks what the model needs outside Python (DIAMOND): one line naming what to install."""

    def __init__(self, message: str) -> None:
        MlflowException.__init__(self, " ".join(str(message).split()), error_code=INTERNAL_ERROR)


def _where(row: int, pid: Any = None) -> str:
    return f"row {row + 1}" + (f" (protein {pid!r})" if isinstance(pid, str) else "")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def check_id(row: int, pid: Any) -> str:
    """A protein id as the FASTA reader and DIAMOND read one: a non-empty string without whitespace."""
    if _missing(pid):
        raise RequestError(f"{_where(row)}: `protein` is null; give every record a protein id (a string).")
    if not isinstance(pid, str):
        raise RequestError(f'{_where(row)}: `protein` is {pid!r}, not a string; give ids as strings, e.g. "P12345".')
    if not pid or pid != "".join(pid.split()):
        raise RequestError(
            f"{_where(row)}: protein id {pid!r} is empty or holds whitespace; FASTA and DIAMOND ids end at the "
            "first space: give an id without spaces (e.g. with '_')."
        )
    return pid


def clean_sequence(row: int, pid: str, seq: Any) -> str:
    """A request's sequence as the FASTA reader reads one: upper case, no spaces, one closing '*' dropped,
    J read as X; RequestError for a null, a non-string, an empty sequence or a letter ESM-2 cannot encode."""
    where = _where(row, pid)
    if _missing(seq):
        raise RequestError(f"{where}: `sequence` is null; give its residues as one-letter codes.")
    if not isinstance(seq, str):
        raise RequestError(
            f'{where}: `sequence` is {seq!r}, not a string; give its residues as one-letter codes, e.g. "MKTAYIAK".'
        )
    text = "".join(seq.split()).upper()
    text = text[:-1] if text.endswith("*") else text
    for old, new in REPLACED_LETTERS.items():
        text = text.replace(old, new)
    if not text:
        raise RequestError(f"{where}: empty sequence; give its residues as one-letter codes.")
    bad = set(text) - ESM_LETTERS
    if bad:
        raise RequestError(
            f"{where}: letters ESM-2 cannot encode: {''.join(sorted(bad))!r}; "
            f"use amino-acid letters ({''.join(sorted(ESM_LETTERS))}) only."
        )
    return text


def check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The request's params: `evidence` (true/false), `top` (a whole number >= 1) and `orient` (records | list);
    others are refused."""
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise RequestError(f'`params` must be an object such as {{"evidence": true}}, not {type(params).__name__}.')
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise RequestError(f"params: {unknown[0]!r} is not a parameter of this model; use {', '.join(PARAMS)}.")
    evidence, top = params.get("evidence", False), params.get("top", 3)
    if not isinstance(evidence, bool):
        raise RequestError(f"params.evidence is {evidence!r}; use {PARAMS['evidence']}.")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise RequestError(f"params.top is {top!r}; use {PARAMS['top']}.")
    orient = params.get("orient", ORIENTS[0])
    if orient not in ORIENTS:
        raise RequestError(f"params.orient is {orient!r}; use {PARAMS['orient']}.")
    return {"evidence": evidence, "top": top, "orient": orient}


def check_size(proteins: int, residues: int, limits: ServingParams) -> None:
    """RequestError before any work for a request over serving.max_proteins or serving.max_residues."""
    if proteins > limits.max_proteins:
        raise RequestError(
            f"the request holds {proteins} proteins, more than serving.max_proteins={limits.max_proteins}; "
            f"send them in requests of at most {limits.max_proteins} (or use `cafa predict` for a whole FASTA)."
        )
    if residues > limits.max_residues:
        raise RequestError(
            f"the request holds {residues} residues, more than serving.max_residues={limits.max_residues}; "
            "send fewer or shorter sequences per request (or use `cafa predict` for a whole FASTA)."
        )


def _records(body: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    """(columns, rows as lists or dicts) of a dataframe_split / dataframe_records request."""
    found = [key for key in FORMATS if key in body]
    if len(found) != 1:
        raise RequestError(
            "the request must hold exactly one of `dataframe_split` or `dataframe_records` (with `protein` and "
            f"`sequence`); it holds {', '.join(sorted(map(str, body))) or 'nothing'}."
        )
    table = body[found[0]]
    if found[0] == "dataframe_records":
        if not isinstance(table, list) or not all(isinstance(r, Mapping) for r in table):
            raise RequestError(
                '`dataframe_records` must be a list of objects such as {"protein": ..., "sequence": ...}.'
            )
        return sorted({k for r in table for k in r}), table
    if not isinstance(table, Mapping) or not isinstance(table.get("data"), list):
        raise RequestError("`dataframe_split` must be an object with `columns` and `data` (a list of rows).")
    columns = table.get("columns") or []
    if not all(isinstance(row, list) and len(row) == len(columns) for row in table["data"]):
        raise RequestError(
            f"`dataframe_split`: every row of `data` must be a list of {len(columns)} values, one per column."
        )
    return list(columns), table["data"]


def check_body(body: Any, limits: ServingParams | None) -> None:
    """Checks of a decoded JSON request before MLflow parses it: its shape, columns, params and size."""
    if not isinstance(body, Mapping):
        raise RequestError("the request must be a JSON object with `dataframe_split` or `dataframe_records`.")
    columns, rows = _records(body)
    check_params(body.get("params"))
    if not rows:
        raise RequestError("the request holds no proteins; send at least one record with `protein` and `sequence`.")
    for name in ("protein", "sequence"):
        if name not in columns and not (name == "sequence" and "embedding" in columns):
            raise RequestError(
                f"the request lacks the column `{name}`; give `protein` and `sequence` for every record."
            )
    if isinstance(rows[0], Mapping):
        sequences = [r.get("sequence") for r in rows]
    else:
        at = columns.index("sequence") if "sequence" in columns else None
        sequences = [r[at] for r in rows] if at is not None else []
    for row, record in enumerate(rows):
        values = record if isinstance(record, Mapping) else dict(zip(columns, record))
        pid = check_id(row, values.get("protein"))
        if "sequence" in values or "embedding" not in values:
            clean_sequence(row, pid, values.get("sequence"))
    if limits is not None:
        check_size(len(rows), sum(len(s) for s in sequences if isinstance(s, str)), limits)


def _reason(err: MlflowException) -> str:
    """The last reason in an error MLflow raised (after its request dump), one line, at most MAX_REASON chars."""
    text = err.message.rsplit("Error: ", 1)[-1]
    return " ".join(text.split())[:MAX_REASON]


def release_memory() -> None:
    """Collect a request's garbage and hand freed heap pages back to the system (glibc malloc_trim), so that
    the server's resident memory returns near its base after a large request (docs/serving.md, measured)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def model_limits(model: Any) -> ServingParams | None:
    """The serving block a PyFuncModel was logged with (its metadata); None: no limits."""
    meta = getattr(getattr(model, "metadata", None), "metadata", None) or {}
    block = meta.get("serving")
    return ServingParams.from_dict(block) if block else None


def guarded(invocations: Callable) -> Callable:
    """`invocations` of MLflow's scoring server with this model's checks first and one-line errors after."""

    def checked(data: Any, content_type: str | None, model: Any, input_schema: Any) -> Any:
        if (content_type or "").split(";")[0].strip() == "application/json":
            try:
                body = json.loads(data)
            except (ValueError, UnicodeDecodeError) as err:
                raise RequestError(f"the request body is not valid JSON ({err}); send a JSON object.") from None
            check_body(body, model_limits(model))
        try:
            return invocations(data, content_type, model, input_schema)
        except (RequestError, ModelError):
            raise
        except MlflowException as err:
            raise RequestError(_reason(err)) from None
        finally:
            release_memory()  # the answer's table is garbage now (its JSON text is what is sent)

    checked.cafa_guarded = True
    return checked


def guard_scoring_server() -> bool:
    """Install `guarded` in MLflow's scoring server when it is the process loading the model (it imports
    the server before it loads the model); False elsewhere (a Python session, `cafa predict`)."""
    import sys

    server = sys.modules.get("mlflow.pyfunc.scoring_server")
    if server is None:
        return False
    if not getattr(server.invocations, "cafa_guarded", False):
        server.invocations = guarded(server.invocations)
    return True
