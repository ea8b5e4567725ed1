"""One `mlflow.pyfunc` model for any Predictor (a single member or the ensemble), always finalized for CAFA
(GO-consistent, params.yaml's submission block: term cap, significant figures, minimum score).

Model input: a DataFrame with a `protein` column plus `embedding` (the pooled ESM vector, float32) and/or
`sequence`, as the predictor needs (`required_inputs(model)`); the embedding settings the predictor was
fitted on are in the model metadata (`embed_settings(model)`). Output: protein, term, score, each protein's
terms sorted by score, highest first.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, Schema

from cafa_mlflow.config.schema import SubmissionParams
from cafa_mlflow.errors import CafaError, InputError
from cafa_mlflow.go.finalize import finalize, round_sig
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io import integrity
from cafa_mlflow.predictors.base import CHUNKS, EMBEDDING, META_FILE, SEQUENCE, Predictor, ProteinSet, read_meta

EXAMPLE_SEQUENCE = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVV"
BASE_REQUIREMENTS = ("mlflow", "numpy", "pandas", "scipy", "pyarrow", "scikit-learn")
NEURAL_REQUIREMENTS = ("torch", "fair-esm")


def input_columns(needs: set[str]) -> set[str]:
    """Model input columns for a predictor's needs (chunk models are served one pooled vector each)."""
    return {EMBEDDING if n == CHUNKS else n for n in needs}


class GoModel(mlflow.pyfunc.PythonModel):
    """A saved predictor folder (artifact `predictor`) and the ontology (artifact `obo`)."""

    def __init__(self, submission: Mapping[str, Any], threads: int = 0) -> None:
        self.submission = SubmissionParams.from_dict(submission)  # the submission block, validated
        self.threads = int(threads)

    def load_context(self, context: Any) -> None:
        self.load_artifacts(context.artifacts)

    def load_artifacts(self, artifacts: Mapping[str, str]) -> GoModel:
        """Load the ontology and the predictor (also usable without MLflow, e.g. in tests)."""
        self.ontology = load_obo(artifacts["obo"])
        self.predictor = Predictor.load(artifacts["predictor"])
        self.predictor.set_threads(self.threads)
        self.inputs = input_columns(self.predictor.inputs())
        return self

    def set_threads(self, threads: int) -> None:
        """CPU threads of external tools (DIAMOND); 0 = all cores."""
        self.threads = int(threads)
        self.predictor.set_threads(self.threads)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return to_output(self.predict_matrix(self.parse_input(model_input)), self.submission.sig)

    def parse_input(self, frame: pd.DataFrame) -> ProteinSet:
        """The ProteinSet of an input DataFrame (InputError when a needed column is missing)."""
        if not isinstance(frame, pd.DataFrame) or "protein" not in frame:
            raise InputError("model input must be a DataFrame with a `protein` column.")
        ids = frame["protein"].astype(str).tolist()
        dup = pd.Index(ids)[pd.Index(ids).duplicated()]
        if len(dup):
            raise InputError(f"protein {dup[0]!r} appears twice in the model input; give each protein once.")
        missing = sorted(c for c in self.inputs if c not in frame)
        if missing:
            raise InputError(
                f"model input lacks column(s) {', '.join(missing)}; this model needs "
                f"{', '.join(sorted(self.inputs))} besides `protein`."
            )
        embeddings = None
        if EMBEDDING in self.inputs:
            embeddings = (
                np.stack([np.asarray(v, dtype=np.float32).ravel() for v in frame[EMBEDDING]])
                if len(frame)
                else np.zeros((0, 0), np.float32)
            )
        sequences = frame[SEQUENCE].astype(str).tolist() if SEQUENCE in self.inputs else None
        return ProteinSet(ids, embeddings=embeddings, sequences=sequences)

    def predict_matrix(self, proteins: ProteinSet) -> TermMatrix:
        """Finalized scores of the proteins (rows in input order) over the ontology's terms that score."""
        return finalize(self.predictor.predict(proteins), self.ontology, self.submission)


def to_output(tm: TermMatrix, sig: int) -> pd.DataFrame:
    """Long (protein, term, score) table: proteins in row order, scores highest first (ties: term order)."""
    coo = tm.matrix.tocoo()
    order = np.lexsort((coo.col, -coo.data, coo.row))
    scores = round_sig(coo.data[order], sig)  # float32 -> the float64 nearest to the rounded decimal
    return pd.DataFrame(
        {
            "protein": np.asarray(tm.proteins, dtype=object)[coo.row[order]],
            "term": np.asarray(tm.terms, dtype=object)[coo.col[order]],
            "score": scores,
        }
    )


def signature_for(columns: set[str]) -> ModelSignature:
    cols = [ColSpec(DataType.string, "protein")]
    if EMBEDDING in columns:
        cols.append(ColSpec(Array(DataType.double), EMBEDDING))  # accepts float32 arrays and lists
    if SEQUENCE in columns:
        cols.append(ColSpec(DataType.string, SEQUENCE))
    out = [ColSpec(DataType.string, "protein"), ColSpec(DataType.string, "term"), ColSpec(DataType.double, "score")]
    return ModelSignature(Schema(cols), Schema(out))


def example_input(columns: set[str], dim: int | None, n: int = 2) -> pd.DataFrame:
    """A small valid input: `n` proteins with a fixed sequence and a deterministic embedding of width `dim`."""
    frame = pd.DataFrame({"protein": [f"EXAMPLE{i + 1}" for i in range(n)]})
    if EMBEDDING in columns:
        rng = np.random.default_rng(0)
        frame[EMBEDDING] = [rng.standard_normal(dim).astype(np.float32) for _ in range(n)]
    if SEQUENCE in columns:
        frame[SEQUENCE] = [EXAMPLE_SEQUENCE[: len(EXAMPLE_SEQUENCE) - 5 * i] for i in range(n)]
    return frame


def log_go_model(
    folder: str | os.PathLike,
    obo: str | os.PathLike,
    submission: Mapping[str, Any],
    name: str = "model",
    input_example: pd.DataFrame | None = None,
    predictor: Predictor | None = None,
) -> Any:
    """Log the predictor saved in `folder` as one pyfunc model in the active run; returns ModelInfo.

    submission: params.yaml's submission block (max_terms, sig, min_score); without an input example, one
    is generated (a fixed sequence, random embeddings of the predictor's width: `predictor`, the one saved in
    `folder` when the caller holds it, else loaded from `folder`)."""
    meta = read_meta(folder)
    columns = input_columns(set(meta.get("inputs", ())))
    metadata = {
        "required_inputs": sorted(columns),
        "embed": meta.get("embed") or {},
        "kind": meta["kind"],
        "submission": dict(submission),
    }
    if input_example is None:
        input_example = example_input(columns, (predictor or Predictor.load(folder)).embedding_dim())
    neural = _uses_torch(Path(folder))
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=GoModel(submission),
        artifacts={"obo": str(obo), "predictor": str(folder)},
        signature=signature_for(columns),
        input_example=input_example,
        metadata=metadata,
        pip_requirements=_requirements(BASE_REQUIREMENTS + (NEURAL_REQUIREMENTS if neural else ())),
    )


def _uses_torch(folder: Path) -> bool:
    """Whether the saved predictor (or one of its members) is a neural one."""
    return any(read_meta(p.parent)["kind"] == "neural" for p in folder.rglob("predictor.json"))


def model_metadata(model: Any) -> dict:
    """User metadata of a model: a PyFuncModel, an mlflow Model or ModelInfo, or a model URI."""
    if isinstance(model, (str, os.PathLike)):
        model = mlflow.models.get_model_info(str(model))
    meta = getattr(model, "metadata", None)
    if isinstance(meta, mlflow.models.Model):
        meta = meta.metadata
    if not isinstance(meta, Mapping) or "required_inputs" not in meta:
        raise InputError(
            "this MLflow model was not logged by cafa_mlflow.serving.pyfunc.log_go_model (no required_inputs in its metadata)."
        )
    return dict(meta)


def required_inputs(model: Any) -> set[str]:
    """Input columns besides `protein` the model needs: a subset of {"embedding", "sequence"}."""
    return set(model_metadata(model)["required_inputs"])


def embed_settings(model: Any) -> dict:
    """The embedding settings (esm_model, layer, strategy, window, stride, pooling, ...) the model was fitted on."""
    return dict(model_metadata(model).get("embed") or {})


def artifact_problem(location: str) -> str | None:
    """What is missing or damaged in a logged GoModel at `location` (its artifact folder), in words naming
    the path; None when it is complete or cannot be checked from here (a remote artifact store)."""
    import urllib.parse

    import yaml

    if location.startswith("file:"):
        root = Path(urllib.parse.unquote(urllib.parse.urlparse(location).path))
    elif "://" in location:
        return None
    else:
        root = Path(location)
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        return f"{mlmodel} is missing"
    try:
        artifacts = yaml.safe_load(mlmodel.read_text())["flavors"]["python_function"]["artifacts"]
        paths = {name: root / entry["path"] for name, entry in artifacts.items()}
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return f"{mlmodel} is damaged"
    for path in paths.values():
        if not path.exists():
            return f"{path} is missing"
    predictor = paths.get("predictor")
    if predictor is not None:
        try:
            if not (predictor / META_FILE).is_file():
                return f"{predictor / META_FILE} is missing"
            integrity.verify_folder(predictor, "")
        except CafaError as err:
            return str(err).rstrip("; ")
    return None


def version_problem(client: Any, name: str, version: str) -> str | None:
    """artifact_problem of a registered version (None: complete or not checkable)."""
    try:
        return artifact_problem(client.get_model_version_download_uri(name, version))
    except mlflow.exceptions.MlflowException:  # cannot tell from here
        return None


def load_failure(uri: str, err: BaseException) -> str:
    """One line for a model that cannot be loaded: the model, version and alias, the missing or damaged path,
    and advice that works (an earlier complete version that can take the alias, or --model-uri)."""
    from mlflow.tracking import MlflowClient

    detail = " ".join(str(err).split())[:200] or type(err).__name__
    match = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))/?", uri)
    if not match:
        return f"cannot load model {uri} ({detail}); check --model-uri (predict.model_uri)."
    name, alias, version = match.groups()
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException:
        what = f"no version with alias {alias!r}" if alias else f"no version {version}"
        return (
            f"cannot load model {uri}: registered model {name!r} has {what}; run `cafa ensemble` (or `cafa train`) "
            "to register one, or pass --model-uri."
        )
    problem = version_problem(client, name, mv.version) or detail
    head = f"cannot load model {name} version {mv.version}{f' (alias {alias})' if alias else ''}: {problem}"
    try:
        others = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: -int(v.version))
    except mlflow.exceptions.MlflowException:
        others = []
    for other in others:
        if str(other.version) == str(mv.version) or other.tags.get("status") == "incomplete":
            continue
        if version_problem(client, name, other.version) is None:
            give = (
                f" or give it the alias: MlflowClient().set_registered_model_alias({name!r}, {alias!r}, "
                f"{str(other.version)!r})"
                if alias
                else ""
            )
            return (
                f"{head}; version {other.version} is complete: pass --model-uri models:/{name}/{other.version}{give}."
            )
    again = f" (its version takes the alias {alias}: this one is incomplete)" if alias else ""
    return f"{head}; no complete version of {name} is left: run `cafa ensemble` (or `cafa train`) again{again}."


def load_model(uri: str) -> Any:
    """mlflow.pyfunc.load_model, with a one-line InputError naming the model, version, alias and missing
    path when its artifacts are gone or damaged."""
    try:
        return mlflow.pyfunc.load_model(uri)
    except (mlflow.exceptions.MlflowException, CafaError, OSError) as err:
        raise InputError(load_failure(uri, err)) from err


def _requirements(packages: tuple[str, ...]) -> list[str]:
    out = []
    for name in packages:
        try:
            version = importlib.metadata.version(name).split("+")[0]  # drop local tags such as +cpu
            out.append(f"{name}=={version}")
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return out
