"""Reference search sensitivity and the near-identity rule, by measurement.

Extends bench_reference.py (one search per split and mode, the product's rules applied in memory) to the settings
the reference member could ship. Each search spec MODE:HITS[:SAMPLE] is one DIAMOND search of the validation
(1,629) and visible test (4,215) proteins against the prepared reference, HITS hits per query, with the coverage
columns; it is cached on disk (`--cache`) with DIAMOND's CPU seconds (user + system of the child) and wall seconds.
SAMPLE (a fraction) searches a seeded subsample of both splits (a costly mode); its rows are compared with the
first full search restricted to the same proteins (a query's hits do not depend on the other queries). `--joint`
searches both splits' queries in one DIAMOND call (its fixed cost, scanning the 516k-protein database, paid once);
the CPU seconds are then those of the one call.

For every reference.max_target_seqs K in `--k` with K + 10 <= HITS (the member searches K + 10 hits), the member's
vote as shipped (predictors/reference.py): the `reference.exclude` rule over the whole split, and for validation
queries (holdout queries) the holdout rules of params (`holdout_max_identity`, `holdout_own_terms`: drop_direct
masks the own entry's direct terms); then the best K hits vote. Near-identity rows drop, for every query, the hits
with >= I % identity over >= C % of both lengths before the best K are kept (data.reference.drop_near_identical).

    PYTHONPATH=$PWD python benchmarks/reference_sensitivity.py --params-file outputs/sens/params.yaml \
        --searches default:60,default:260,mid-sensitive:260 --near-identity 95:90
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import write_section  # noqa: E402
from validation_echo import overrides  # noqa: E402

from cafa_mlflow.config.params_file import load_params  # noqa: E402
from cafa_mlflow.config.schema import Params  # noqa: E402
from cafa_mlflow.data.diamond import COVERAGE_COLUMNS, HIT_COLUMNS, search  # noqa: E402
from cafa_mlflow.data.reference import drop_near_identical, filter_hits, sequence_hash  # noqa: E402
from cafa_mlflow.evaluation.scorer import Scorer, flat_metrics, read_truth  # noqa: E402
from cafa_mlflow.go.labels import TermMatrix  # noqa: E402
from cafa_mlflow.go.ontology import load_obo  # noqa: E402
from cafa_mlflow.io.fasta import read_fasta, write_fasta  # noqa: E402
from cafa_mlflow.predictors import registry  # noqa: E402
from cafa_mlflow.predictors.base import TrainSet  # noqa: E402
from cafa_mlflow.predictors.homology import hits_to_scores  # noqa: E402
from cafa_mlflow.predictors.reference import ReferencePredictor  # noqa: E402
from cafa_mlflow.predictors.reference_echo import masked_vote, own_entry_rows, own_term_mask  # noqa: E402
from cafa_mlflow.workflows.common import ensure_prepared  # noqa: E402

SENS_TITLE = "## Reference search sensitivity: DIAMOND mode and max_target_seqs"
NEAR_TITLE = "## Reference near-identity rule"
ASPECTS = ("BPO", "CCO", "MFO", "mean")
SEED = 0


@dataclass
class Split:
    """A split's proteins (all of them are the `queries` exclusion set), their hashes, FASTA, truth file and the
    holdout_own_terms mask of its holdout queries (None: no rule)."""

    name: str
    ids: list[str]
    qhash: np.ndarray
    fasta: Path
    truth_file: Path
    mask: sp.csr_matrix | None


@dataclass(frozen=True)
class Spec:
    mode: str
    hits: int
    sample: float  # 1.0 = every protein

    @classmethod
    def parse(cls, text: str) -> Spec:
        mode, hits, *sample = text.split(":")
        return cls(mode, int(hits), float(sample[0]) if sample else 1.0)

    def __str__(self) -> str:
        return f"{self.mode}:{self.hits}" + (f":{self.sample:g}" if self.sample < 1 else "")


def sample_ids(ids: list[str], fraction: float) -> list[str]:
    """A seeded subsample of `ids` (input order kept); all of them when fraction >= 1."""
    if fraction >= 1:
        return list(ids)
    rng = np.random.default_rng(SEED)
    picked = np.sort(rng.choice(len(ids), size=max(1, round(fraction * len(ids))), replace=False))
    return [ids[i] for i in picked]


def cache_stem(cache: Path, spec: Spec, split: Split) -> Path:
    return cache / f"{spec.mode}_{spec.hits}_{split.name}_{spec.sample:g}"


def cached(cache: Path, spec: Spec, split: Split) -> tuple | None:
    """(hits, timing) of `spec` for `split` when searched before."""
    stem = cache_stem(cache, spec, split)
    if not stem.with_suffix(".parquet").is_file():
        return None
    return pd.read_parquet(stem.with_suffix(".parquet")), json.loads(stem.with_suffix(".json").read_text())


def run_search(pred: ReferencePredictor, fasta: Path, ids: list[str], spec: Spec, threads: int) -> tuple:
    """(hits, timing): DIAMOND's CPU seconds, wall seconds, the 1-minute load average before and after, queries."""
    before, load, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), os.getloadavg()[0], time.perf_counter()
    hits = search(
        pred.ref.db, fasta, ids, spec.mode, pred.evalue, spec.hits, threads, pred.executable,
        columns=HIT_COLUMNS + COVERAGE_COLUMNS,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    timing = {
        "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "wall_s": time.perf_counter() - t0,
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "queries": len(ids),
        "threads": threads,
    }
    print(f"{spec}: {len(ids)} queries, {timing}", flush=True)
    return hits, timing


def store(cache: Path, spec: Spec, split: Split, hits: pd.DataFrame, timing: dict) -> None:
    stem = cache_stem(cache, spec, split)
    cache.mkdir(parents=True, exist_ok=True)
    hits.to_parquet(stem.with_suffix(".parquet"), index=False)
    stem.with_suffix(".json").write_text(json.dumps(timing, indent=1) + "\n")


def timed_searches(pred: ReferencePredictor, splits: dict, spec: Spec, args) -> dict[str, tuple]:
    """{split: (hits, timing)} of `spec`, from the cache when searched before; one DIAMOND call per split, or one
    for both (`args.joint`: the timing is the call's, with "joint": true)."""
    found = {name: cached(args.cache, spec, split) for name, split in splits.items()}
    if all(found.values()):
        return found
    ids = {name: sample_ids(split.ids, spec.sample) for name, split in splits.items()}
    if not args.joint:
        for name, split in splits.items():
            store(args.cache, spec, split, *run_search(pred, split.fasta, ids[name], spec, args.threads))
        return {name: cached(args.cache, spec, split) for name, split in splits.items()}
    with tempfile.TemporaryDirectory(prefix="sens-") as tmp:
        fasta = Path(tmp) / "queries.fasta"
        wanted = {i for chosen in ids.values() for i in chosen}
        records = {r.id: r.sequence for s in splits.values() for r in read_fasta(s.fasta) if r.id in wanted}
        order = [i for chosen in ids.values() for i in chosen]
        write_fasta(fasta, [(i, records[i]) for i in order])
        hits, timing = run_search(pred, fasta, order, spec, args.threads)
    for name, split in splits.items():
        store(args.cache, spec, split, hits[hits["qseqid"].isin(set(ids[name]))], {**timing, "joint": True})
    return {name: cached(args.cache, spec, split) for name, split in splits.items()}


def member_vote(
    pred: ReferencePredictor, split: Split, hits: pd.DataFrame, ids: list[str], k: int, near: tuple | None
) -> tuple[TermMatrix, pd.DataFrame]:
    """The member's scores of `ids` from `hits` as shipped (see the module doc), and the hits that voted."""
    at = pd.Index(split.ids).get_indexer(ids)
    hits = hits[hits["qseqid"].isin(set(ids))]
    kept = filter_hits(
        hits, ids, split.qhash[at], pred.ref.seq_hash, pred.exclude, pred.holdout, pred.holdout_max_identity,
        split.ids, split.qhash,
    )  # fmt: skip
    if near is not None:
        kept = drop_near_identical(kept, *near)
    kept = kept[kept.groupby("qseqid", sort=False).cumcount() < k].reset_index(drop=True)
    labels = pred.ref.labels
    if split.mask is not None:
        return masked_vote(kept, ids, labels, split.mask[at], pred.root_col), kept
    targets = list(pd.unique(kept["sseqid"]))
    sub = TermMatrix(targets, labels.terms, labels.matrix[pd.Index(labels.proteins).get_indexer(targets)])
    return hits_to_scores(kept, ids, sub, False, 0, root_col=pred.root_col), kept


def load_split(pred: ReferencePredictor, prepared, name: str) -> Split:
    """The split with its holdout_own_terms mask (validation queries are holdout queries; test ones are not)."""
    ids = prepared.ids(name)
    qhash = sequence_hash(prepared.sequences(name, ids))
    mask = None
    held = np.array([i in pred.holdout for i in ids], dtype=bool)
    if pred.holdout_own_terms != "vote" and held.any():
        rows = own_entry_rows(ids, qhash, pred.ref.labels.proteins, pred.ref.seq_hash, pred.accessions)
        rows[~held] = -1
        direct = pred.ref.annotations() if pred.holdout_own_terms == "drop_direct" else None
        mask = own_term_mask(rows, pred.ref.labels, direct, pred.root_col)
    return Split(name, ids, qhash, prepared.fasta(name), prepared.truth_file(name), mask)


class Scores:
    """Weighted F-max of a split's protein subsets (one Scorer per subset, built once)."""

    def __init__(self, ontology, ia, step: float) -> None:
        self.ontology, self.ia, self.step, self.scorers = ontology, ia, step, {}

    def __call__(self, split: Split, ids: list[str], tm: TermMatrix) -> dict[str, float]:
        key = (split.name, len(ids))
        if key not in self.scorers:
            truth = read_truth(split.truth_file, self.ontology, ids)
            self.scorers[key] = Scorer(self.ontology, truth, self.ia, self.step)
        f = flat_metrics(self.scorers[key](tm))
        return {a: f.get(f"f_w_{a}", np.nan) for a in ASPECTS}


def sensitivity_rows(pred, splits: dict, specs: list[Spec], ks: list[int], args, scores: Scores) -> list[dict]:
    """One row per (search spec, K) and, for a sampled spec, the first full spec on the same proteins."""
    rows, searched = [], {}
    for spec in specs:
        searched[spec] = timed_searches(pred, splits, spec, args)
    for spec in specs:
        compared = [spec]
        if spec.sample < 1:
            compared.append(next(s for s in specs if s.sample >= 1 and s.hits >= spec.hits))
        for used in compared:
            for k in (k for k in ks if k + 10 <= used.hits):
                row = {"search": str(used), "on": str(spec), "k": k}
                for name, split in splits.items():
                    hits, timing = searched[used][name]
                    ids = sample_ids(split.ids, spec.sample)
                    tm, kept = member_vote(pred, split, hits, ids, k, None)
                    row[name] = scores(split, ids, tm)
                    row[f"{name}_timing"] = timing
                    row[f"{name}_with_hit"] = kept["qseqid"].nunique() / len(ids)
                rows.append(row)
                print(row["search"], row["on"], k, {s: round(row[s]["mean"], 4) for s in splits}, flush=True)
    return rows


def near_rows(pred, splits: dict, spec: Spec, k: int, rules: list[tuple], args, scores: Scores) -> list[dict]:
    """The member at K from `spec`'s hits without and with each near-identity rule (identity %, coverage %)."""
    rows, searched = [], timed_searches(pred, splits, spec, args)
    for near in [None, *rules]:
        row = {"rule": "off" if near is None else f">= {near[0]:g}% identity over >= {near[1]:g}% of both"}
        for name, split in splits.items():
            hits = searched[name][0]
            tm, kept = member_vote(pred, split, hits, split.ids, k, near)
            row[name] = scores(split, split.ids, tm)
            base = filter_hits(
                hits, split.ids, split.qhash, pred.ref.seq_hash, pred.exclude, pred.holdout,
                pred.holdout_max_identity,
            )  # fmt: skip
            dropped = base if near is None else base.drop(drop_near_identical(base, *near).index)
            row[f"{name}_dropped"] = 0 if near is None else len(dropped)
            row[f"{name}_queries_losing"] = 0 if near is None else dropped["qseqid"].nunique()
            row[f"{name}_with_hit"] = kept["qseqid"].nunique() / len(split.ids)
        rows.append(row)
        print(row["rule"], {s: round(row[s]["mean"], 4) for s in splits}, flush=True)
    return rows


def f_cells(f: dict) -> str:
    return " | ".join(f"{f[a]:.3f}" for a in ASPECTS)


def sensitivity_table(rows: list[dict], pred: ReferencePredictor) -> str:
    head = (
        "| search (mode:hits[:sample]) | proteins | max_target_seqs | DIAMOND CPU s val / test | CPU s per 1,000 "
        "queries | wall s val / test | load (1 min) | val with a hit | val BPO | CCO | MFO | **mean** | test BPO "
        "| CCO | MFO | **mean** | gap |"
    )
    lines = [head, "|" + "---|" * 17]
    for r in rows:
        tv, tt = r["val_timing"], r["test_timing"]
        own = r["search"] == r["on"]
        joint = tv.get("joint", False)
        cpu_s = tv["cpu_s"] if joint else tv["cpu_s"] + tt["cpu_s"]
        per_k = 1000 * cpu_s / (tv["queries"] if joint else tv["queries"] + tt["queries"])
        cpu = f"{tv['cpu_s']:.0f} / {tt['cpu_s']:.0f}" if not joint else f"{cpu_s:.0f} (one call)"
        wall = f"{tv['wall_s']:.0f} / {tt['wall_s']:.0f}" if not joint else f"{tv['wall_s']:.0f} (one call)"
        cpu, wall = (cpu, wall) if own else ("(full search)", "")
        load = f"{max(tv['load_before'], tv['load_after'], tt['load_before'], tt['load_after']):.1f}"
        proteins = "all" if r["on"].count(":") == 1 else f"sample {r['on'].split(':')[2]}"
        lines.append(
            f"| {r['search']} | {proteins} | {r['k']} | {cpu} | {per_k:.1f} | {wall} | {load} | {r['val_with_hit']:.1%} "
            f"| {f_cells(r['val'])} | {f_cells(r['test'])} | {r['val']['mean'] - r['test']['mean']:+.3f} |"
        )
    return "\n".join(lines)


def near_table(rows: list[dict]) -> str:
    lines = [
        "| near-identity rule | hits dropped val / test | queries losing a hit val / test | val with a hit "
        "| val BPO | CCO | MFO | **mean** | test BPO | CCO | MFO | **mean** | gap |",
        "|" + "---|" * 13,
    ]
    for r in rows:
        lines.append(
            f"| {r['rule']} | {r['val_dropped']:,} / {r['test_dropped']:,} | {r['val_queries_losing']:,} / "
            f"{r['test_queries_losing']:,} | {r['val_with_hit']:.1%} | {f_cells(r['val'])} | {f_cells(r['test'])} "
            f"| {r['val']['mean'] - r['test']['mean']:+.3f} |"
        )
    return "\n".join(lines)


def header(args, pred: ReferencePredictor) -> str:
    host = f"{platform.node()}, {platform.machine()}, {os.cpu_count()} CPU cores (shared)"
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python", "benchmarks/reference_sensitivity.py", *sys.argv[1:]])
    return (
        f"Machine: {host}; date: {date}; load average at the end {os.getloadavg()[0]:.1f} (each search's own "
        f"in the table); command: `{command}`; params overridden: {overrides(args.params_file)}; DIAMOND threads "
        f"{args.threads}, e-value {pred.evalue:g}; rules: exclude={pred.exclude}, holdout_max_identity="
        f"{pred.holdout_max_identity:g}, holdout_own_terms={pred.holdout_own_terms} (validation)."
    )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params-file", default=None, help="YAML of keys overriding params.yaml")
    ap.add_argument("--searches", default="default:60,default:260", help="MODE:HITS[:SAMPLE],...")
    ap.add_argument("--k", default="50,100,250", help="reference.max_target_seqs values")
    ap.add_argument("--near-identity", default="", help="IDENTITY:COVERAGE,... rules measured at the shipped mode")
    ap.add_argument("--near-search", default=None, help="the search spec the near-identity rows use")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--joint", action="store_true", help="one DIAMOND call for both splits' queries")
    ap.add_argument("--cache", type=Path, default=Path("outputs/sens/hits"))
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    params = Params.from_dict(load_params(None, params_file=args.params_file))
    prepared, ontology = ensure_prepared(params), load_obo(params.data.obo)
    pred = registry.build("reference", params, ontology)
    pred.fit(TrainSet(prepared.ids("train"), labels=prepared.split_labels("train")))
    splits = {name: load_split(pred, prepared, name) for name in ("val", "test")}
    scores = Scores(ontology, prepared.ia, params.evaluate.threshold_step)
    specs = [Spec.parse(s) for s in args.searches.split(",")]
    rows = sensitivity_rows(pred, splits, specs, [int(k) for k in args.k.split(",")], args, scores)
    text = f"{SENS_TITLE}\n\n{header(args, pred)}\n\n{sensitivity_table(rows, pred)}\n"
    print(text)
    if not args.no_write:
        write_section(text)
    if args.near_identity:
        rules = [tuple(float(x) for x in r.split(":")) for r in args.near_identity.split(",")]
        spec = Spec.parse(args.near_search) if args.near_search else specs[-1]
        k = params.reference.max_target_seqs
        near = near_rows(pred, splits, spec, k, rules, args, scores)
        text = f"{NEAR_TITLE}\n\n{header(args, pred)} Search {spec}, max_target_seqs {k}.\n\n{near_table(near)}\n"
        print(text)
        if not args.no_write:
            write_section(text)


if __name__ == "__main__":
    main()
