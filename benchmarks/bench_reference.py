"""Reference transfer: which hits validation must lose to behave like the test set, and which DIAMOND mode.

One DIAMOND search per split and mode (k = 2 x reference.max_target_seqs + 10) against the prepared reference;
then, in memory, the exclusion policies (ReferencePredictor's filter_hits) and the vote. For each policy of
the validation queries it prints the share of queries with a hit and their median best identity (sequences
only) next to the test set's under `reference.exclude` (no labels: this is what the policy is chosen on), and
the validation weighted F-max; test scores are printed for the record, never used to choose.

    PYTHONPATH=$PWD python benchmarks/bench_reference.py [--modes default,fast,sensitive] [--test]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from cafa_mlflow.config.params_file import load_params
from cafa_mlflow.config.schema import Params
from cafa_mlflow.data.diamond import search
from cafa_mlflow.data.reference import filter_hits, sequence_hash
from cafa_mlflow.evaluation.scorer import flat_metrics
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.fasta import read_fasta
from cafa_mlflow.predictors import registry
from cafa_mlflow.predictors.base import TrainSet
from cafa_mlflow.predictors.homology import hits_to_scores
from cafa_mlflow.predictors.reference import ReferencePredictor
from cafa_mlflow.workflows.common import ensure_prepared, split_scorer

CUTOFFS = (100, 95, 90, 80, 70, 60, 50, 40)


def vote(pred: ReferencePredictor, hits: pd.DataFrame, ids: list[str], k: int) -> TermMatrix:
    hits = hits[hits.groupby("qseqid", sort=False).cumcount() < k]
    labels = pred.ref.labels
    targets = list(pd.unique(hits["sseqid"]))
    rows = pd.Index(labels.proteins).get_indexer(targets)
    sub = TermMatrix(targets, labels.terms, labels.matrix[rows])
    return hits_to_scores(hits, ids, sub, False, 0, root_col=pred.root_col)


def coverage(hits: pd.DataFrame, ids: list[str]) -> tuple[float, float]:
    best = hits.groupby("qseqid")["pident"].max()
    return len(best) / len(ids), float(best.median()) if len(best) else 0.0


def best_identity(hits: pd.DataFrame, ids: list[str]) -> np.ndarray:
    """Each query's best identity, 0 without a hit."""
    return hits.groupby("qseqid")["pident"].max().reindex(ids).fillna(0.0).to_numpy()


def ks(a: np.ndarray, b: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance of two samples (largest gap of their empirical CDFs)."""
    grid = np.union1d(a, b)
    cdf = lambda x: np.searchsorted(np.sort(x), grid, side="right") / len(x)  # noqa: E731
    return float(np.abs(cdf(a) - cdf(b)).max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="default")
    ap.add_argument("--test", action="store_true", help="also score the test split (for the record)")
    ap.add_argument(
        "--val-only", action="store_true", help="validation only, reference.holdout_max_identity's policy (mode choice)"
    )
    args = ap.parse_args()
    params = Params.from_dict(load_params(None))
    b = params.reference
    prepared = ensure_prepared(params)
    ontology = load_obo(params.data.obo)
    pred = registry.build("reference", params, ontology)
    t0 = time.perf_counter()
    pred.fit(TrainSet(prepared.ids("train"), labels=prepared.split_labels("train")))
    print(f"reference ready in {time.perf_counter() - t0:.0f} s: {len(pred.ref.labels.proteins)} proteins")
    k = b.max_target_seqs
    rows = []
    for mode in args.modes.split(","):
        raw, ids, qhash, seconds = {}, {}, {}, {}
        for split in ("val",) if args.val_only else ("test", "val"):
            ids[split] = prepared.ids(split)
            seqs = {r.id: r.sequence for r in read_fasta(prepared.fasta(split))}
            qhash[split] = sequence_hash([seqs[i] for i in ids[split]])
            t0 = time.perf_counter()
            raw[split] = search(
                pred.ref.db, prepared.fasta(split), ids[split], mode, b.evalue, 2 * k + 10, pred.threads
            )
            seconds[split] = time.perf_counter() - t0
        cut = b.holdout_max_identity
        if args.val_only:
            policies = [(f"queries + identity <= {cut:g}", "self", set(ids["val"]), cut)]
            test_best = None
        else:
            test_kept = filter_hits(raw["test"], ids["test"], qhash["test"], pred.ref.seq_hash, b.exclude, set(), 100.0)
            test_best = best_identity(test_kept, ids["test"])
            policies = [("own entry + identical only", "self", set(), 100.0)]
            policies += [(f"queries + identity <= {c}", "self", set(ids["val"]), float(c)) for c in CUTOFFS]
        scorer = split_scorer(prepared, ontology, "val", params.evaluate.threshold_step)
        for label, exclude, holdout, cut in policies:
            kept = filter_hits(raw["val"], ids["val"], qhash["val"], pred.ref.seq_hash, exclude, holdout, cut)
            distance = np.nan if test_best is None else ks(best_identity(kept, ids["val"]), test_best)
            f = flat_metrics(scorer(vote(pred, kept, ids["val"], k)))
            rows.append((mode, "val", label, seconds["val"], *coverage(kept, ids["val"]), distance, f))
            print(rows[-1][:7], round(f["f_w_mean"], 3), flush=True)
        if args.val_only:
            continue
        f = {}
        if args.test:  # for the record only
            test_scorer = split_scorer(prepared, ontology, "test", params.evaluate.threshold_step)
            f = flat_metrics(test_scorer(vote(pred, test_kept, ids["test"], k)))
        rows.append(
            (mode, "test", f"reference.exclude={b.exclude}", seconds["test"], *coverage(test_kept, ids["test"]), 0.0, f)
        )
    print(
        "\n| mode | split | hits excluded | search s | with a hit | median best identity | KS vs test | BPO | CCO | MFO | mean |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode, split, label, sec, cov, med, distance, f in rows:
        aspects = " | ".join(f"{f.get(f'f_w_{a}', np.nan):.3f}" for a in ("BPO", "CCO", "MFO", "mean"))
        print(f"| {mode} | {split} | {label} | {sec:.0f} | {cov:.1%} | {med:.1f} | {distance:.3f} | {aspects} |")


if __name__ == "__main__":
    main()
