"""Loading a registered model: a version whose artifacts are missing or incomplete is named (model, version,
alias, missing path) with advice that works (an earlier complete version, `--model-uri`, or `cafa ensemble`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow

from cafa_mlflow.errors import CafaError, InputError, MissingToolError
from cafa_mlflow.io import integrity
from cafa_mlflow.predictors.base import META_FILE

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel
    from mlflow.tracking import MlflowClient


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


def version_problem(client: MlflowClient, name: str, version: str) -> str | None:
    """artifact_problem of a registered version (None: complete or not checkable)."""
    try:
        return artifact_problem(client.get_model_version_download_uri(name, version))
    except mlflow.exceptions.MlflowException:  # cannot tell from here
        return None


def load_failure(uri: str, err: BaseException) -> str:
    """One line for a model that cannot be loaded: the model, version and alias, the missing or damaged path,
    and advice that works (an earlier complete version that can take the alias, or --model-uri)."""
    from mlflow.tracking import MlflowClient

    text = " ".join(str(err).split())
    # a CafaError is already one line naming the file and the fix: kept whole; a library's message is cut short
    detail = (text if isinstance(err, CafaError) else text[:200]) or type(err).__name__
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


def load_model(uri: str) -> PyFuncModel:
    """mlflow.pyfunc.load_model, with a one-line InputError naming the model, version, alias and missing
    path when its artifacts are gone or damaged."""
    try:
        return mlflow.pyfunc.load_model(uri)
    except MissingToolError:  # the machine lacks a tool the model needs (DIAMOND): its own line says what to install
        raise
    except (mlflow.exceptions.MlflowException, CafaError, OSError) as err:
        raise InputError(load_failure(uri, err)) from err


def pinned_uri(uri: str) -> str:
    """`models:/NAME@ALIAS` as `models:/NAME/VERSION` (the version the alias names now), so that shards and Ray
    workers load the same model even if the alias moves meanwhile; any other URI (or an unknown alias) as is."""
    from mlflow.tracking import MlflowClient

    match = re.fullmatch(r"models:/([^/@]+)@([^/]+)/?", uri)
    if not match:
        return uri
    try:
        return f"models:/{match[1]}/{MlflowClient().get_model_version_by_alias(match[1], match[2]).version}"
    except mlflow.exceptions.MlflowException:
        return uri  # load_model names what is missing
