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

from cafa_mlflow.config import load_params
from cafa_mlflow.evaluation.scorer import flat_metrics
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.fasta import read_fasta
from cafa_mlflow.labels import TermMatrix
from cafa_mlflow.predictors.homology import hits_to_scores, search
from cafa_mlflow.predictors.reference import ReferencePredictor, filter_hits, sequence_hash
from cafa_mlflow.predictors.base import TrainSet
from cafa_mlflow.schema import Params
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="default")
    ap.add_argument("--test", action="store_true", help="also score the test split (for the record)")
    args = ap.parse_args()
    params = Params.from_dict(load_params(None))
    b = params.reference
    prepared = ensure_prepared(params)
    ontology = load_obo(params.data.obo)
    pred = ReferencePredictor.from_params(params, ontology)
    t0 = time.perf_counter()
    pred.fit(TrainSet(prepared.ids("train"), labels=prepared.split_labels("train")))
    print(f"reference ready in {time.perf_counter() - t0:.0f} s: {len(pred.ref.labels.proteins)} proteins")
    k = b.max_target_seqs
    rows = []
    for mode in args.modes.split(","):
        for split in ("val", "test") if args.test else ("val",):
            ids = prepared.ids(split)
            seqs = {r.id: r.sequence for r in read_fasta(prepared.fasta(split))}
            qhash = sequence_hash([seqs[i] for i in ids])
            t0 = time.perf_counter()
            raw = search(pred.ref.db, prepared.fasta(split), ids, mode, b.evalue, 2 * k + 10, pred.threads)
            seconds = time.perf_counter() - t0
            scorer = split_scorer(prepared, ontology, split, params.evaluate.threshold_step)
            policies = [("queries", set(), 100.0)] if split == "test" else [("self", set(ids), c) for c in CUTOFFS]
            for exclude, holdout, cut in policies:
                if split == "val" and cut == 100:
                    kept = filter_hits(raw, ids, qhash, pred.ref.seq_hash, "self", set(), 100.0)
                    label = "own entry + identical only"
                    cov = coverage(kept, ids)
                    f = flat_metrics(scorer(vote(pred, kept, ids, k)))
                    rows.append((mode, split, label, seconds, *cov, f))
                kept = filter_hits(raw, ids, qhash, pred.ref.seq_hash, exclude, holdout, cut)
                label = "queries (test policy)" if split == "test" else f"queries + identity <= {cut}"
                f = flat_metrics(scorer(vote(pred, kept, ids, k)))
                rows.append((mode, split, label, seconds, *coverage(kept, ids), f))
                print(rows[-1][:6], round(f["f_w_mean"], 3), flush=True)
    print("\n| mode | split | hits excluded | search s | with a hit | median best identity | BPO | CCO | MFO | mean |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode, split, label, sec, cov, med, f in rows:
        aspects = " | ".join(f"{f.get(f'f_w_{a}', np.nan):.3f}" for a in ("BPO", "CCO", "MFO"))
        print(f"| {mode} | {split} | {label} | {sec:.0f} | {cov:.1%} | {med:.1f} | {aspects} | {f['f_w_mean']:.3f} |")


if __name__ == "__main__":
    main()
