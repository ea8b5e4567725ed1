"""Learned stacker vs members vs simplex blend on the whole bundled sample, validation (out-of-fold) vs test.

Learns only from the 16,390 training proteins (folds, blend weights, stacker); the 4,215 test proteins
are only scored. Also compares fold splits (random vs homology-aware at several identity thresholds):
out-of-fold validation vs test weighted F-max of homology, naive and 0.95 homology + 0.05 naive.
Writes the "## Stacker" section of benchmarks/RESULTS.md.

    python benchmarks/bench_stacker.py [--params params.yaml] [--thresholds none,30,50,70,90] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from results_md import write_section

from cafa_mlflow.config import load_params
from cafa_mlflow.crossfit import fold_frequencies, naive_matrix
from cafa_mlflow.ensemble import combine, finalize, fit_weights, make_consistent
from cafa_mlflow.evaluation.scorer import Scorer, read_truth
from cafa_mlflow.folds import cross_fold_hits, hit_clusters, leaking_hits, make_folds
from cafa_mlflow.go.ontology import ASPECTS
from cafa_mlflow.io.fasta import load_fasta, write_fasta
from cafa_mlflow.labels import TermMatrix
from cafa_mlflow.pool import load_pool
from cafa_mlflow.predictors.homology import build_db, hits_to_scores, search
from cafa_mlflow.predictors.naive import term_frequencies
from cafa_mlflow.stacker.features import Pairs, gather
from cafa_mlflow.stacker.stack import StackSettings, fit_stack
from cafa_mlflow.transfer import aspect_root_columns

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Stacker: members, simplex blend and learned stacker (validation = out-of-fold, test = visible test)"
TIMES: dict[str, float] = {}


def timed(name: str, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    TIMES[name] = TIMES.get(name, 0.0) + time.perf_counter() - start
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {TIMES[name]:.1f} s", flush=True)
    return out


def diamond_hits(db: Path, fasta: Path, out: Path, cfg: dict) -> pd.DataFrame:
    if out.is_file():
        return pd.read_parquet(out)
    hits = search(db, fasta, None, cfg["sensitivity"], cfg["evalue"], 0, cfg["threads"] or 2, cfg["executable"])
    hits.to_parquet(out)
    return hits


def metrics(scorer: Scorer, pred: TermMatrix) -> dict[str, float]:
    r = scorer(pred)
    out = {f"f_w_{a}": r[a]["f_w"] for a in ASPECTS} | {f"f_{a}": r[a]["f"] for a in ASPECTS}
    return out | {"f_w_mean": r["mean_f_w"], "f_mean": r["mean_f"]}


def fold_comparison(thresholds, hits, labels, root_col, naive_test, hom_test, s_val, s_test, k, seed, floor):
    """Per split candidate: cluster stats and val vs test f_w_mean of homology, naive, 0.95/0.05 blend."""
    rows = []
    t_hom, t_nai = metrics(s_test, hom_test)["f_w_mean"], metrics(s_test, naive_test)["f_w_mean"]
    t_bl = metrics(s_test, combine({"h": hom_test, "n": naive_test}, {"h": 0.95, "n": 0.05}))["f_w_mean"]
    for thr in thresholds:
        folds = make_folds(hits, labels.proteins, k, thr, seed=seed)
        groups = hit_clusters(hits, labels.proteins, thr) if thr is not None else np.arange(len(folds))
        hom = hits_to_scores(cross_fold_hits(hits, labels.proteins, folds), labels.proteins, labels, root_col=root_col)
        aspects = s_val.ontology.aspect[[s_val.ontology.index[t] for t in labels.terms]]
        rows_k = fold_frequencies(labels.matrix, folds, aspects)
        nai = TermMatrix(labels.proteins, labels.terms, naive_matrix(rows_k, folds, floor))
        print(f"  [{time.strftime('%H:%M:%S')}] OOF members ready", flush=True)
        v_hom, v_nai = metrics(s_val, hom)["f_w_mean"], metrics(s_val, nai)["f_w_mean"]
        v_bl = metrics(s_val, combine({"h": hom, "n": nai}, {"h": 0.95, "n": 0.05}))["f_w_mean"]
        gap = np.mean(np.abs([v_hom - t_hom, v_nai - t_nai, v_bl - t_bl]))
        no_hit = 1 - pd.Index(labels.proteins).isin(cross_fold_hits(hits, labels.proteins, folds)["qseqid"]).mean()
        rows.append(
            {
                "split": "random" if thr is None else f"identity >= {thr}%",
                "thr": thr,
                "folds": folds,
                "clusters": len(np.unique(groups)),
                "largest": int(np.bincount(groups).max()),
                "fold_sizes": np.bincount(folds).tolist(),
                "no_hit": no_hit,
                "val": (v_hom, v_nai, v_bl),
                "test": (t_hom, t_nai, t_bl),
                "gap": gap,
            }
        )
        print(rows[-1]["split"], rows[-1]["val"], rows[-1]["test"], f"gap {gap:.3f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--thresholds", default="none,30,50,70,90")
    ap.add_argument("--out", default=str(ROOT / "outputs/bench_stacker"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    params = load_params(args.params)
    data, hcfg, fcfg = params["data"], params["homology"], params["folds"]
    settings = StackSettings(**params["stacker"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pool = timed("load pool + labels + IA", load_pool, data)
    ontology, records, labels, ia = pool.ontology, pool.records, pool.labels, pool.ia
    tests = load_fasta(data["test_fasta"])
    test_ids, test_len = [r.id for r in tests], np.array([len(r.sequence) for r in tests])
    pool_len = np.array([len(r.sequence) for r in records])
    write_fasta(out / "pool.fasta", ((r.id, r.sequence) for r in records))
    write_fasta(out / "test.fasta", ((r.id, r.sequence) for r in tests))
    db = timed("diamond makedb", build_db, out / "pool.fasta", out, None, hcfg["threads"] or 2)
    pool_hits = timed("diamond pool all-vs-all", diamond_hits, db, out / "pool.fasta", out / "pool_hits.parquet", hcfg)
    test_hits = timed("diamond test vs pool", diamond_hits, db, out / "test.fasta", out / "test_hits.parquet", hcfg)
    s_test = Scorer(ontology, read_truth(data["test_terms"], ontology), ia)
    s_val = Scorer(ontology, labels, ia)
    root_col = aspect_root_columns(labels.terms, ontology)
    floor = settings.member_floor
    aspects = ontology.aspect[[ontology.index[t] for t in labels.terms]]
    full_naive = term_frequencies(labels.matrix, aspects, "aspect")[None, :]
    naive_test = TermMatrix(test_ids, labels.terms, naive_matrix(full_naive, np.zeros(len(test_ids), int), floor))
    hom_test = timed("homology test", hits_to_scores, test_hits, test_ids, labels, root_col=root_col)
    thresholds = [None if t == "none" else float(t) for t in args.thresholds.split(",")]
    splits = timed(
        "fold split comparison",
        fold_comparison,
        thresholds,
        pool_hits,
        labels,
        root_col,
        naive_test,
        hom_test,
        s_val,
        s_test,
        fcfg["k"],
        fcfg["seed"],
        floor,
    )
    chosen = min(splits, key=lambda r: r["gap"])
    folds = chosen["folds"]
    leaks = leaking_hits(pool_hits, labels.proteins, folds, chosen["thr"]) if chosen["thr"] is not None else None
    print("chosen", chosen["split"], "leaking hits", None if leaks is None else len(leaks), flush=True)
    t_fit = time.perf_counter()
    stack, oof = timed(
        "stacker: OOF features + fit", fit_stack, labels, pool_len, pool_hits, folds, ontology, ia, settings
    )
    stack_test = timed("stacker: test features + predict", stack.predict, test_ids, test_hits, test_len)
    TIMES["main-equivalent (hits excluded)"] = time.perf_counter() - t_fit
    hom_val = TermMatrix(labels.proteins, labels.terms, oof.members["homology"])
    nai_val = TermMatrix(labels.proteins, labels.terms, naive_matrix(oof.naive_rows, oof.which, floor))
    sub = np.random.default_rng(0).choice(len(labels.proteins), 4000, replace=False)
    sub_ids = [labels.proteins[i] for i in sorted(sub)]
    s_sub = Scorer(ontology, labels.reindex(proteins=sub_ids), ia)
    members_val = {"homology": hom_val.reindex(proteins=sub_ids), "naive": nai_val.reindex(proteins=sub_ids)}
    weights = timed(
        "simplex blend weights (4,000 OOF proteins)",
        fit_weights,
        members_val,
        None,
        lambda t, p: s_sub(p),
        ontology,
        step=0.05,
    )
    weights = {a: w for a, w in weights.items()}
    print("blend weights", weights, flush=True)
    rows = {}
    rows["naive"] = (metrics(s_val, nai_val), metrics(s_test, naive_test))
    rows["homology (all labels, all hits, per-aspect)"] = (metrics(s_val, hom_val), metrics(s_test, hom_test))
    rows["0.95 homology + 0.05 naive"] = (
        metrics(s_val, combine({"h": hom_val, "n": nai_val}, {"h": 0.95, "n": 0.05})),
        metrics(s_test, combine({"h": hom_test, "n": naive_test}, {"h": 0.95, "n": 0.05})),
    )
    rows["simplex blend (weights on OOF)"] = (
        metrics(s_val, finalize(combine({"homology": hom_val, "naive": nai_val}, weights, ontology), ontology)),
        metrics(s_test, finalize(combine({"homology": hom_test, "naive": naive_test}, weights, ontology), ontology)),
    )
    stack_val, held = stack_holdout(oof, stack, labels, folds, settings)
    s_held = Scorer(ontology, labels.reindex(proteins=held), ia)
    rows["stacker (submission: finalize)"] = (
        metrics(s_held, finalize(stack_val, ontology)),
        metrics(s_test, finalize(stack_test, ontology)),
    )
    TIMES["total"] = time.perf_counter() - t0
    text = report(rows, splits, chosen, leaks, settings, fcfg)
    print(text)
    if not args.no_write:
        write_section(text)


def stack_holdout(oof, stack, labels, folds, settings) -> tuple[TermMatrix, list[str]]:
    """Honest validation of the stacker: refit on the pairs of folds 1..K-1, score fold 0's proteins."""
    pairs = oof.pairs(stack.info, settings)
    y = gather(labels.matrix, pairs.rows, pairs.cols) > 0
    inside = folds[pairs.rows] == 0

    def part(mask):
        return Pairs(pairs.rows[mask], pairs.cols[mask], pairs.X[mask], pairs.names)

    model = timed("stacker hold-out refit (bench only)", settings.stacker().fit, part(~inside), y[~inside])
    m = sp.csr_matrix((model.predict_pairs(part(inside)), (pairs.rows[inside], pairs.cols[inside])), shape=labels.shape)
    ids = [labels.proteins[i] for i in np.flatnonzero(folds == 0)]
    return make_consistent(TermMatrix(labels.proteins, labels.terms, m), stack.ontology).reindex(proteins=ids), ids


def _cell(m: dict, a: str) -> str:
    if a == "mean":
        return f"**{m['f_w_mean']:.3f}** ({m['f_mean']:.3f})"
    return f"{m[f'f_w_{a}']:.3f} ({m[f'f_{a}']:.3f})"


def report(rows, splits, chosen, leaks, settings, fcfg) -> str:
    lines = [
        SECTION,
        "",
        f"{datetime.date.today()}, {platform.node()} ({platform.machine()}, 2 cores shared), "
        "`python benchmarks/bench_stacker.py`; all 16,390 training proteins learn, all 4,215 test proteins are "
        "only scored. IA from the training pool; evaluator = cafa_mlflow.evaluation.scorer (= cafaeval).",
        "",
        "### Fold split candidates (K = {k}): validation (out-of-fold) vs test weighted F-max (mean of aspects)".format(
            k=fcfg["k"]
        ),
        "",
        "| split | clusters | largest | fold sizes | val proteins w/o usable hit | homology val / test | naive val / test | 0.95 hom + 0.05 naive val / test | mean abs gap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in splits:
        v, t = r["val"], r["test"]
        lines.append(
            f"| {r['split']} | {r['clusters']} | {r['largest']} | {r['fold_sizes']} | {r['no_hit']:.1%} | "
            f"{v[0]:.3f} / {t[0]:.3f} | {v[1]:.3f} / {t[1]:.3f} | {v[2]:.3f} / {t[2]:.3f} | {r['gap']:.3f} |"
        )
    lines += [
        "",
        f"Chosen: **{chosen['split']}** (smallest mean |val - test|); cross-fold hits at or above it: "
        f"{'n/a' if leaks is None else len(leaks)}. (test: 1,667 of 4,215 test proteins have no hit.)",
        "",
        "### Members, blend, stacker",
        "",
        "| method | "
        + " | ".join(f"val {c}" for c in ("BPO", "CCO", "MFO", "mean"))
        + " | "
        + " | ".join(f"test {c}" for c in ("BPO", "CCO", "MFO", "mean"))
        + " |",
        "|---|" + "---|" * 8,
    ]
    for name, (v, t) in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(m, a) for m in (v, t) for a in (*ASPECTS, "mean")) + " |")
    lines += [
        "",
        "Cells: weighted F-max (unweighted F-max). Stacker val = fold 0 (one fifth of the pool) scored by a stacker refitted on "
        "the other folds' out-of-fold pairs; its test = one fit on all out-of-fold pairs.",
        f"Stacker settings: {vars(settings)}",
        "",
        "### Wall time per stage (s)",
        "",
        "| stage | s |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.0f} |" for k, v in TIMES.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
