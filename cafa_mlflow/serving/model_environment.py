"""What a logged model carries besides its artifacts, so that it runs where this project is not installed:

- its code: a copy of the `cafa_mlflow` package, logged with MLflow's `code_paths` (the model folder's `code/`,
  put on `sys.path` by `mlflow.pyfunc.load_model`);
- its pip requirements: exactly the distributions the model's code imports when it loads and predicts, pinned
  to this environment's versions (local tags such as `+cpu` dropped);
- what it needs outside Python: the DIAMOND executable (homology and reference members) and MMseqs2 where a member
  searches with it (`engine: mmseqs2`), declared in the
  model's metadata (`system_requirements`) and checked when the model loads (`system_problem`), so that a
  machine without it is told in one line how to install it instead of failing at the first request.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from cafa_mlflow.predictors.base import read_meta

PACKAGE = Path(__file__).resolve().parents[1]  # the cafa_mlflow package folder
# Imported by every model (GoModel, predictors, ontology, finalize, console). mlflow's own dependencies that the
# model's code imports directly are named too, so that a change of mlflow's dependencies cannot drop them.
BASE_REQUIREMENTS = ("mlflow", "numpy", "pandas", "scipy", "pyyaml", "tqdm", "packaging")
EMBED_REQUIREMENTS = ("torch", "fair-esm")  # the model embeds sequences with an ESM-2 encoder
KIND_REQUIREMENTS = {
    "neural": ("torch", "fair-esm", "scikit-learn"),
    "stacked": ("scikit-learn",),
    "reference": ("pyarrow",),  # its annotation and protein tables are parquet files
}
DIAMOND_KINDS = ("homology", "reference")
DIAMOND = {
    "name": "DIAMOND",
    "executable": "diamond",
    "version": ">=2.0,<3",  # the .dmnd format the members' databases were built in (DIAMOND 2.x)
    "debian": "diamond-aligner",
    "conda": "bioconda::diamond",
}
MMSEQS = {
    "name": "MMseqs2",
    "executable": "mmseqs",
    "version": ">=13",  # versions print as `14-7e284`: not compared (tool_version finds no dotted version)
    "debian": "mmseqs2",
    "conda": "bioconda::mmseqs2",
}
VERSION_TIMEOUT_S = 30


def member_kinds(folder: str | os.PathLike) -> set[str]:
    """The kinds of a saved predictor and of every member saved inside it."""
    return {read_meta(p.parent)["kind"] for p in Path(folder).rglob("predictor.json")}


def requirements(kinds: Iterable[str], embeds: bool) -> list[str]:
    """Pinned pip requirements of a model whose predictors are of `kinds` (embeds: it embeds sequences)."""
    names = list(BASE_REQUIREMENTS) + (list(EMBED_REQUIREMENTS) if embeds else [])
    for kind in sorted(set(kinds)):
        names += KIND_REQUIREMENTS.get(kind, ())
    return [pin(name) for name in dict.fromkeys(names)]


def pin(name: str) -> str:
    """`name==version` of the installed distribution (without a local tag such as +cpu); the bare name when
    it is not installed here."""
    try:
        return f"{name}=={importlib.metadata.version(name).split('+')[0]}"
    except importlib.metadata.PackageNotFoundError:
        return name


def copy_code(dest: str | os.PathLike) -> str:
    """A copy of the cafa_mlflow package (Python sources only) in `dest`; its path, for `code_paths`."""
    target = Path(dest) / PACKAGE.name
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"))
    return str(target)


def mmseqs_users(folder: str | os.PathLike) -> set[str]:
    """The kinds of the members saved in `folder` that search with MMseqs2 (config.json's engine)."""
    users = set()
    for meta in Path(folder).rglob("predictor.json"):
        config = meta.parent / "config.json"
        engine = json.loads(config.read_text()).get("engine") if config.is_file() else None
        if isinstance(engine, dict) and engine.get("engine") == "mmseqs2":
            users.add(read_meta(meta.parent)["kind"])
    return users


def system_requirements(kinds: Iterable[str], mmseqs: Iterable[str] = ()) -> list[dict[str, Any]]:
    """What a model of these predictor kinds needs outside Python (for the model's metadata); `mmseqs`: the
    kinds that search with MMseqs2 (`mmseqs_users`)."""
    users = sorted(set(kinds) & set(DIAMOND_KINDS))
    needs = [{**DIAMOND, "needed_by": users}] if users else []
    return needs + ([{**MMSEQS, "needed_by": sorted(set(mmseqs))}] if mmseqs else [])


def tool_version(path: str) -> str | None:
    """The version `diamond version` prints ('2.1.3'); None when it cannot be run."""
    try:
        out = subprocess.run([path, "version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\d+(?:\.\d+)+", out)
    return found.group(0) if found else None


def _satisfies(version: str, spec: str) -> bool:
    try:
        return Version(version) in SpecifierSet(spec)
    except InvalidVersion:
        return True  # an unusual version string: not refused on its account


def system_problem(needs: Sequence[Mapping[str, Any]]) -> str | None:
    """One line naming the first system requirement that this machine lacks (absent executable or a version
    outside the range) and how to install it; None when all are met."""
    for need in needs:
        users = " and ".join(need.get("needed_by", ())) or "a"
        install = f"`sudo apt-get install {need['debian']}` (Debian/Ubuntu) or `conda install {need['conda']}`"
        path = shutil.which(need["executable"])
        if path is None:
            return (
                f"this model needs {need['name']} {need['version']} (`{need['executable']}`, for its {users} member), "
                f"not on PATH: {install}."
            )
        version = tool_version(path)
        if version is not None and not _satisfies(version, need["version"]):
            return f"this model needs {need['name']} {need['version']}, {path} is version {version}: {install}."
    return None
