"""Homology cross-fitting: K per-fold DIAMOND databases (what `cafa member` does) vs one search of the train
split against its own database with each query's own-fold hits dropped (one database only).

    make prepare; python benchmarks/bench_crossfit_search.py
Prints a table and refreshes the "## Homology cross-fitting: per-fold databases vs one search" section of
benchmarks/RESULTS.md. Uses params.yaml (homology.*, folds.*) and the prepared data.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from results_md import write_section  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

from cafa_mlflow.config.schema import load_config
from cafa_mlflow.data.diamond import search
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.predictors import registry
from cafa_mlflow.predictors.crossfit import cross_fit
from cafa_mlflow.predictors.homology import hits_to_scores
from cafa_mlflow.workflows.common import ensure_prepared, training_set

SECTION = "## Homology cross-fitting: per-fold databases vs one search"


def cross_fold_hits(hits: pd.DataFrame, ids: Sequence[str], folds: np.ndarray) -> pd.DataFrame:
    """Hits whose query and target lie in different folds: those a validation protein may use (its
    fold's training part); hits to ids outside the pool are dropped."""
    index = pd.Index(list(ids))
    q, t = index.get_indexer(hits["qseqid"]), index.get_indexer(hits["sseqid"])
    keep = (q >= 0) & (t >= 0)
    keep[keep] = folds[q[keep]] != folds[t[keep]]
    return hits[keep]


def one_search(fitted, train, folds: np.ndarray) -> TermMatrix:
    """Out-of-fold homology scores from a single search of `train` against the predictor fitted on all of it."""
    hits = search(fitted.db, train.fasta, train.ids, fitted.sensitivity, fitted.evalue, 0, fitted.threads)
    usable = cross_fold_hits(hits, train.ids, folds)
    return hits_to_scores(
        usable, train.ids, fitted.labels, fitted.exclude_self, fitted.max_target_seqs, root_col=fitted.root_col
    )


def main() -> None:
    params = load_config("params.yaml")
    prepared, ontology = ensure_prepared(params), load_obo(params.data.obo)

    def make():
        return registry.build("homology", params, ontology)

    fitted = make()
    train = training_set(fitted, params, prepared, "train")
    fitted.fit(train)
    folds = prepared.folds(params.folds.k, params.folds.seed)
    results = {}
    for name, run in (
        ("per-fold databases", lambda: cross_fit(make, train, folds)),
        ("one search", lambda: one_search(fitted, train, folds)),
    ):
        start = time.perf_counter()
        results[name] = (run(), time.perf_counter() - start)
    per_fold, single = (
        results["per-fold databases"][0],
        results["one search"][0].reindex(terms=results["per-fold databases"][0].terms),
    )
    differ = np.asarray(abs(per_fold.matrix - single.matrix).sum(axis=1)).ravel() > 1e-6
    rows = ["| strategy | seconds | scores kept |", "|---|---|---|"]
    rows += [f"| {name} | {secs:.1f} | {tm.matrix.nnz:,} |" for name, (tm, secs) in results.items()]
    text = (
        f"{SECTION}\n\n{datetime.date.today()}, {os.cpu_count()} CPU cores; {len(train.ids):,} train proteins, "
        f"folds.k={params.folds.k}, homology.sensitivity={params.homology.sensitivity}, "
        f"homology.evalue={params.homology.evalue}; `python benchmarks/bench_crossfit_search.py`.\n\n"
        + "\n".join(rows)
        + f"\n\nProteins whose out-of-fold scores differ between the two: {int(differ.sum()):,} of {len(differ):,} "
        "(bitscores are the same; e-values grow with the database, so borderline hits pass in one and not the other). "
        "DIAMOND searches K small databases faster than one large one here, so `cafa member` keeps the per-fold databases.\n"
    )
    print(text)
    write_section(text)


if __name__ == "__main__":
    main()
