"""One `mlflow.pyfunc` model for any set of GO-term predictors: a single member (a train run) or a
weighted ensemble, always finalized for CAFA (GO-consistent, at most 1,500 terms per protein, 3
significant figures).

Model input: a DataFrame with a `protein` column plus `embedding` (the pooled ESM vector, float32)
and/or `sequence`, as the members need (`required_inputs(model)`); the embedding settings the members
were trained with are in the model metadata (`embed_settings(model)`). Output: protein, term, score,
each protein's terms sorted by score, highest first.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, Schema

from cafa_mlflow.ensemble import combine, finalize, round_sig
from cafa_mlflow.errors import ConfigError, InputError
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.labels import TermMatrix
from cafa_mlflow.predictors.members import (
    EMBEDDING,
    SEQUENCE,
    check_kind,
    load_member,
    member_dim,
    member_inputs,
    predict_member,
)

EMBED_KEYS = ("esm_model", "layer", "strategy", "window", "stride", "pooling", "max_residues")
FINALIZE_DEFAULTS = {"max_terms": 1500, "sig": 3, "min_score": 0.001}
EXAMPLE_SEQUENCE = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVV"
BASE_REQUIREMENTS = ("mlflow", "numpy", "pandas", "scipy", "pyarrow")
NEURAL_REQUIREMENTS = ("torch", "fair-esm")


class GoModel(mlflow.pyfunc.PythonModel):
    """Members (name -> kind, folders as artifacts `member_<name>`), per-aspect weights, finalize settings."""

    def __init__(
        self,
        kinds: Mapping[str, str],
        weights: Mapping[str, Any] | None = None,
        finalize_args: Mapping[str, Any] | None = None,
        threads: int = 0,
    ) -> None:
        if not kinds:
            raise ConfigError("a GoModel needs at least one member.")
        self.kinds = {name: check_kind(kind) for name, kind in kinds.items()}
        if weights is None and len(self.kinds) > 1:
            weights = {name: 1.0 / len(self.kinds) for name in self.kinds}
        self.weights = None if weights is None else _plain(weights)
        self.finalize_args = {**FINALIZE_DEFAULTS, **(finalize_args or {})}
        self.threads = int(threads)

    def load_context(self, context: Any) -> None:
        self.load_artifacts(context.artifacts)

    def load_artifacts(self, artifacts: Mapping[str, str]) -> GoModel:
        """Load the ontology and the member folders (also usable without MLflow, e.g. in tests)."""
        self.ontology = load_obo(artifacts["obo"])
        self.predictors = {
            name: load_member(kind, artifacts[f"member_{name}"], self.threads) for name, kind in self.kinds.items()
        }
        self.inputs = set().union(
            *(member_inputs(kind, artifacts[f"member_{name}"]) for name, kind in self.kinds.items())
        )
        return self

    def set_threads(self, threads: int) -> None:
        """CPU threads of the members that run external tools (DIAMOND); 0 = all cores."""
        self.threads = int(threads)
        for name, kind in self.kinds.items():
            if kind == "homology":
                self.predictors[name].threads = self.threads or (os.cpu_count() or 1)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        ids, embeddings, sequences = self.parse_input(model_input)
        return to_output(self.predict_matrix(ids, embeddings, sequences), self.finalize_args["sig"])

    def parse_input(self, frame: pd.DataFrame) -> tuple[list[str], np.ndarray | None, list[str] | None]:
        """ids, stacked embeddings and sequences from the input DataFrame (InputError when incomplete)."""
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
        return ids, embeddings, sequences

    def predict_matrix(self, ids: list[str], embeddings: Any = None, sequences: list[str] | None = None) -> TermMatrix:
        """Finalized scores of `ids` (rows in input order) over the ontology's terms that score."""
        members = {
            name: predict_member(kind, self.predictors[name], ids, embeddings, sequences)
            for name, kind in self.kinds.items()
        }
        if self.weights is None:
            combined = next(iter(members.values()))
        else:
            combined = combine(members, self.weights, self.ontology, proteins=ids)
        args = self.finalize_args
        return finalize(combined, self.ontology, args["max_terms"], args["sig"], args["min_score"])


def to_output(tm: TermMatrix, sig: int = 3) -> pd.DataFrame:
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


def signature_for(inputs: set[str]) -> ModelSignature:
    cols = [ColSpec(DataType.string, "protein")]
    if EMBEDDING in inputs:
        cols.append(ColSpec(Array(DataType.double), EMBEDDING))  # accepts float32 arrays and lists
    if SEQUENCE in inputs:
        cols.append(ColSpec(DataType.string, SEQUENCE))
    out = [ColSpec(DataType.string, "protein"), ColSpec(DataType.string, "term"), ColSpec(DataType.double, "score")]
    return ModelSignature(Schema(cols), Schema(out))


def example_input(inputs: set[str], dim: int | None, n: int = 2) -> pd.DataFrame:
    """A small valid input: `n` proteins with a fixed sequence and a deterministic embedding of width `dim`."""
    frame = pd.DataFrame({"protein": [f"EXAMPLE{i + 1}" for i in range(n)]})
    if EMBEDDING in inputs:
        rng = np.random.default_rng(0)
        frame[EMBEDDING] = [rng.standard_normal(dim).astype(np.float32) for _ in range(n)]
    if SEQUENCE in inputs:
        frame[SEQUENCE] = [EXAMPLE_SEQUENCE[: len(EXAMPLE_SEQUENCE) - 5 * i] for i in range(n)]
    return frame


def log_go_model(
    members: Mapping[str, tuple[str, str | os.PathLike]],
    weights: Mapping[str, Any] | None,
    embed: Mapping[str, Any],
    obo: str | os.PathLike,
    artifact_path: str = "model",
    input_example: pd.DataFrame | None = None,
    finalize_args: Mapping[str, Any] | None = None,
    threads: int = 0,
) -> Any:
    """Log members (name -> (kind, saved folder)) as one pyfunc model in the active run; returns ModelInfo.

    weights: {aspect: {member: w}} or {member: w}; None = the single member as it is (or equal weights).
    embed: the embedding settings the members were trained on (params' `embed` block)."""
    if not members:
        raise ConfigError("log_go_model needs at least one member.")
    for name, (kind, folder) in members.items():
        check_kind(kind)
        if not Path(folder).is_dir():
            raise InputError(f"member {name!r}: {folder} is not a saved predictor folder; fit and save it first.")
    inputs = set().union(*(member_inputs(kind, folder) for kind, folder in members.values()))
    dims = {d for kind, folder in members.values() if (d := member_dim(kind, folder)) is not None}
    if len(dims) > 1:
        raise ConfigError(
            f"members expect embeddings of different widths {sorted(dims)}; "
            "use members trained on the same ESM model and layer."
        )
    model = GoModel({name: kind for name, (kind, _) in members.items()}, weights, finalize_args, threads)
    artifacts = {"obo": str(obo), **{f"member_{name}": str(folder) for name, (_, folder) in members.items()}}
    metadata = {
        "required_inputs": sorted(inputs),
        "embed": {k: embed[k] for k in EMBED_KEYS if k in embed} if inputs & {EMBEDDING} else {},
        "members": dict(model.kinds),
        "weights": model.weights,
        "finalize": model.finalize_args,
    }
    if input_example is None:
        input_example = example_input(inputs, next(iter(dims), None))
    kinds = set(model.kinds.values())
    return mlflow.pyfunc.log_model(
        name=artifact_path,
        python_model=model,
        artifacts=artifacts,
        signature=signature_for(inputs),
        input_example=input_example,
        metadata=metadata,
        pip_requirements=_requirements(BASE_REQUIREMENTS + (NEURAL_REQUIREMENTS if "neural" in kinds else ())),
    )


def model_metadata(model: Any) -> dict:
    """User metadata of a model: a PyFuncModel, an mlflow Model or ModelInfo, or a model URI."""
    if isinstance(model, (str, os.PathLike)):
        model = mlflow.models.get_model_info(str(model))
    meta = getattr(model, "metadata", None)
    if isinstance(meta, mlflow.models.Model):
        meta = meta.metadata
    if not isinstance(meta, Mapping) or "required_inputs" not in meta:
        raise InputError(
            "this MLflow model was not logged by cafa_mlflow.serving.log_go_model (no required_inputs in its metadata)."
        )
    return dict(meta)


def required_inputs(model: Any) -> set[str]:
    """Input columns besides `protein` the model needs: a subset of {"embedding", "sequence"}."""
    return set(model_metadata(model)["required_inputs"])


def embed_settings(model: Any) -> dict:
    """The embedding settings (esm_model, layer, strategy, window, stride, pooling, ...) of the members."""
    return dict(model_metadata(model).get("embed") or {})


def _requirements(packages: tuple[str, ...]) -> list[str]:
    out = []
    for name in packages:
        try:
            version = importlib.metadata.version(name).split("+")[0]  # drop local tags such as +cpu
            out.append(f"{name}=={version}")
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return out


def _plain(tree: Mapping[str, Any]) -> dict:
    """Weights as plain floats (YAML/JSON-safe for the model metadata)."""
    return {k: _plain(v) if isinstance(v, Mapping) else float(v) for k, v in tree.items()}
