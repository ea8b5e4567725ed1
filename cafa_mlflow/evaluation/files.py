"""Scoring many submission files against one truth: ontology, truth and IA are read once (`cafa evaluate
--pred A.tsv,B.tsv` or `--pred FOLDER`, like cafaeval's prediction folder)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from cafa_mlflow.errors import InputError
from cafa_mlflow.evaluation.scorer import Scorer


def submission_paths(pred: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Submission files from a path, a comma-separated list of paths or a list; a folder stands for its
    (non-hidden) files, sorted by name."""
    items = [pred] if isinstance(pred, (str, os.PathLike)) else list(pred)
    paths: list[Path] = []
    for item in items:
        for part in str(item).split(","):
            path = Path(part.strip())
            if path.is_dir():
                found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
                if not found:
                    raise InputError(f"{path}: the prediction folder holds no files.")
                paths += found
            elif part.strip():
                if not path.is_file():
                    raise InputError(f"{path}: submission file not found; check the path.")
                paths.append(path)
    if not paths:
        raise InputError(f"{pred!r}: no submission file given.")
    return paths


def score_files(scorer: Scorer, paths: Sequence[Path]) -> Iterator[tuple[Path, dict, float]]:
    """(path, result, seconds to read and score it) per file, in order; reads only the truth's proteins."""
    from cafa_mlflow.go.labels import read_submission

    for path in paths:
        start = time.perf_counter()
        result = scorer(read_submission(path, proteins=scorer.proteins))
        yield path, result, time.perf_counter() - start


def result_names(paths: Sequence[Path]) -> list[str]:
    """Unique short names of the files (file names; parent folder added where names repeat)."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]
