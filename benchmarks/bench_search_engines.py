"""Search engines per member: DIAMOND vs MMseqs2 (homology.engine / reference.engine), scored in the product.

For each member and engine setting, the member is built from params.yaml with the engine keys overridden, fitted
on the prepared train split (validation) and on the whole pool (test, as `cafa member` does with folds.full_fit),
and scored with the product's scorer (weighted F-max, mean of the aspects). Also: CPU seconds of the batch
searches (this process and its children), the one-time index build (time, size on disk; MMseqs2 only) and the
single-protein latency (median over 5 calls of one test protein each, after one warm-up), threads = 1.

    PYTHONPATH=$PWD python benchmarks/bench_search_engines.py --set prepare.out=/work/dd/outputs/prepared \
        --set reference.out=/work/dd/outputs/reference --members homology,reference \
        --engines diamond,mmseqs2:5.7,mmseqs2:7.5 [--write]
Prints a table (and with --write refreshes `## Search engines` in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from results_md import write_section  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SINGLE = 5  # single-protein calls timed after one warm-up


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def engine_overrides(member: str, setting: str) -> dict[str, object]:
    """`diamond` or `mmseqs2:S` as dotted params keys of the member's block."""
    engine, _, sens = setting.partition(":")
    keys: dict[str, object] = {f"{member}.engine": engine, f"{member}.threads": 1}
    if sens:
        keys[f"{member}.mmseqs_sensitivity"] = float(sens)
    return keys


def index_size(predictor) -> tuple[float, str]:
    """GB on disk of what the engine searches beyond the DIAMOND database (its MMseqs2 index folder)."""
    db = getattr(predictor, "search_db", None)
    if db is None or db.suffix == ".dmnd":
        return 0.0, ""
    out = subprocess.run(["du", "-sb", str(db.parent)], capture_output=True, text=True).stdout.split()[0]
    return int(out) / 1e9, str(db.parent)


def single_protein(predictor, prepared) -> tuple[float, float]:
    """Median wall and CPU seconds of one test protein per call (sequences only, as the served model gets them)."""
    from cafa_mlflow.predictors.base import ProteinSet

    ids = prepared.ids("test")[: SINGLE + 1]
    seqs = prepared.sequences("test", ids)
    walls, cpus = [], []
    for k, (pid, seq) in enumerate(zip(ids, seqs)):
        wall, cpu = time.perf_counter(), cpu_now()
        predictor.predict(ProteinSet([pid], sequences=[seq]))
        if k:
            walls.append(time.perf_counter() - wall)
            cpus.append(cpu_now() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def measure(member: str, setting: str, base: dict[str, object]) -> dict[str, object]:
    """One row: scores, batch search CPU, index build and single-protein latency of one member and engine."""
    from cafa_mlflow.config.params_file import load_params
    from cafa_mlflow.config.schema import Params
    from cafa_mlflow.evaluation.scorer import flat_metrics
    from cafa_mlflow.go.ontology import load_obo
    from cafa_mlflow.predictors import registry
    from cafa_mlflow.workflows.common import bind_encoder_and_load, ensure_prepared, split_scorer, training_set

    params = Params.from_dict(load_params(None, {**base, **engine_overrides(member, setting)}))
    prepared, ontology = ensure_prepared(params), load_obo(params.data.obo)
    row: dict[str, object] = {"member": member, "engine": setting}
    scores = {}
    for fit_split, split in (("train", "val"), ("pool", "test")):
        predictor = registry.build(member, params, ontology)
        wall, cpu = time.perf_counter(), cpu_now()
        predictor.fit(training_set(predictor, params, prepared, fit_split))
        row[f"fit_{split}_s"] = time.perf_counter() - wall
        queries = bind_encoder_and_load(predictor, params, prepared, split)
        wall, cpu = time.perf_counter(), cpu_now()
        tm = predictor.predict(queries)
        row[f"{split}_search_cpu_s"], row[f"{split}_search_s"] = cpu_now() - cpu, time.perf_counter() - wall
        scorer = split_scorer(prepared, ontology, split, params.evaluate.threshold_step)
        scores[split] = flat_metrics(scorer(tm), "")["f_w_mean"]
    row.update(val=scores["val"], test=scores["test"])
    row["index_gb"], row["index_dir"] = index_size(predictor)
    row["single_s"], row["single_cpu_s"] = single_protein(predictor, prepared)
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| member | engine | validation F-w | test F-w | batch search val+test (CPU s) | wall (s) | "
        "one protein (s, median) | CPU (s) | index (GB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['member']} | {r['engine']} | {r['val']:.4f} | {r['test']:.4f} | "
            f"{r['val_search_cpu_s'] + r['test_search_cpu_s']:.0f} | {r['val_search_s'] + r['test_search_s']:.0f} | "
            f"{r['single_s']:.2f} | {r['single_cpu_s']:.2f} | {r['index_gb']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="homology,reference")
    parser.add_argument("--engines", default="diamond,mmseqs2:5.7,mmseqs2:7.5")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE params override (repeatable)")
    parser.add_argument("--write", action="store_true", help="refresh the RESULTS.md section")
    args = parser.parse_args()
    base = dict(kv.split("=", 1) for kv in args.set)
    base.setdefault("homology.out", "outputs/bench-engines/homology")
    rows, load = [], os.getloadavg()[0]
    for member in args.members.split(","):
        for setting in args.engines.split(","):
            rows.append(measure(member, setting, base))
            print(rows[-1], flush=True)
    text = table(rows)
    print(text)
    if args.write:
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        sets = " ".join(f"--set {kv}" for kv in args.set)
        write_section(
            f"## Search engines\n\n{when}, {os.cpu_count()} CPU cores, load average {load:.1f} at the start "
            f"(shared machine), threads = 1; `python benchmarks/bench_search_engines.py {sets} --members "
            f"{args.members} --engines {args.engines}`.\n\n{text}\n"
        )
    shutil.rmtree("outputs/bench-engines", ignore_errors=True)


if __name__ == "__main__":
    main()
