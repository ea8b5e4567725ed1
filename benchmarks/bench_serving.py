"""Serving latency and throughput: `mlflow models serve` answering sequence-only requests of 1, 10 and 100
proteins (the model embeds them with its tiny encoder, DIAMOND searches them, kNN and the naive prior vote).

The model: naive + knn + homology (params.yaml's homology settings), equal blend weights, fitted on a seeded
sample of the bundled training proteins with the offline tiny encoder (`cafa make-tiny-esm` defaults), logged
to a temporary store and served from a copy of its artifacts with `--env-manager local` on 127.0.0.1.
Queries are bundled test proteins. Prints a table and refreshes `## Serving latency` in benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_serving.py            # about 3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from results_md import write_section  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "data/sample"
SIZES = (1, 10, 100)


def build_model(tmp: Path, n_train: int, seed: int) -> str:
    """Fit and log the model; returns the folder of its artifacts (what a model version holds)."""
    import mlflow

    info = fit_and_log(tmp, n_train, seed)
    return mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp / "model"))


def fit_and_log(tmp: Path, n_train: int, seed: int):
    """Fit the model and log it to a sqlite store in `tmp` (the active tracking URI afterwards); its ModelInfo."""
    import mlflow
    import numpy as np

    from cafa_mlflow.config.params_file import load_params
    from cafa_mlflow.embed import embed_fasta, load_embeddings, make_tiny_esm
    from cafa_mlflow.embed.resolve import pooled_rows
    from cafa_mlflow.embed.settings import EmbedSettings
    from cafa_mlflow.go.annotations import resolve_terms
    from cafa_mlflow.go.labels import label_matrix
    from cafa_mlflow.go.ontology import load_obo
    from cafa_mlflow.io.fasta import read_fasta, write_fasta
    from cafa_mlflow.io.terms import read_terms
    from cafa_mlflow.predictors.base import TrainSet
    from cafa_mlflow.predictors.combine.blend import EnsemblePredictor
    from cafa_mlflow.predictors.homology import HomologyPredictor
    from cafa_mlflow.predictors.knn import KnnPredictor
    from cafa_mlflow.predictors.naive import NaivePredictor
    from cafa_mlflow.serving.pyfunc import log_go_model

    params = load_params(ROOT / "params.yaml")
    onto = load_obo(DATA / "go-basic.obo.xz")
    terms = resolve_terms(read_terms(DATA / "train/train_terms.tsv.xz"), onto)
    annotated = set(terms["protein"])
    records = [r for r in read_fasta(DATA / "train/train_sequences.fasta.xz") if r.id in annotated]
    records = sorted(random.Random(seed).sample(records, n_train), key=lambda r: r.id)
    ids = [r.id for r in records]
    fasta = tmp / "train.fasta"
    write_fasta(fasta, [(r.id, r.sequence) for r in records])
    ckpt = str(make_tiny_esm(tmp / "esm2_tiny.pt"))
    settings = EmbedSettings.from_block({**params["embed"], "esm_model": ckpt})
    emb = load_embeddings(embed_fasta(fasta, settings, tmp / "emb", device="cpu", progress=False).cache_dir)
    y = label_matrix(terms[terms["protein"].isin(set(ids))], onto, ids)
    train = TrainSet(ids=ids, embeddings=pooled_rows(emb, ids, "train"), fasta=fasta, labels=y)
    h = params["homology"]
    members = {
        "naive": NaivePredictor(onto, min_score=params["naive"]["min_score"]).fit(train),
        "knn": KnnPredictor(params["knn"]["k"], aspect_of=onto).fit(train),
        "homology": HomologyPredictor(
            tmp / "db", h["sensitivity"], h["evalue"], h["max_target_seqs"], 0, False, aspect_of=onto
        ).fit(train),
    }
    members["knn"].embed = settings
    ensemble = EnsemblePredictor(members, onto)
    ensemble.weights = {a: {m: 1 / 3 for m in members} for a in ("BPO", "CCO", "MFO")}
    ensemble.term_aspect = dict(zip(onto.terms, np.asarray(onto.aspect).tolist()))
    folder = ensemble.save(tmp / "ensemble")
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("bench", artifact_location=str(tmp / "artifacts")))
    with mlflow.start_run():
        return log_go_model(
            folder,
            DATA / "go-basic.obo.xz",
            params["submission"],
            embed_runtime=params["embed"],
            serving=params["serving"],
        )


def machine_line() -> str:
    """`2 CPU cores (Intel(R) Xeon(R) Processor), 24 GiB, no GPU, load average 9.2` from /proc (Linux)."""
    cpu, mem = platform.machine(), ""
    with contextlib.suppress(OSError):
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
        kib = next(int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal"))
        mem = f", {kib / 2**20:.0f} GiB"
    return f"{os.cpu_count()} CPU cores ({cpu}){mem}, no GPU, load average {os.getloadavg()[0]:.1f} (shared machine)"


def queries(n: int, seed: int) -> list[list[str]]:
    from cafa_mlflow.io.fasta import read_fasta

    records = list(read_fasta(DATA / "test/test_sequences.fasta.xz"))
    picked = random.Random(seed).sample(records, n)
    return [[r.id, r.sequence] for r in picked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2000, help="training proteins of the served model")
    parser.add_argument("--repeats", type=int, default=5, help="requests per size (the first is a warm-up)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default=None, help="also copy the served model's folder here (to try it by hand)")
    args = parser.parse_args()
    from cafa_mlflow.serving.server import serve

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        t0 = time.perf_counter()
        model = build_model(Path(tmp), args.train, args.seed)
        if args.keep:
            shutil.copytree(model, args.keep, dirs_exist_ok=True)
        print(f"model fitted and logged in {time.perf_counter() - t0:.1f} s")
        pool = queries(max(SIZES) * args.repeats, args.seed)
        rows = []
        t0 = time.perf_counter()
        with serve(model) as server:
            print(f"server up in {time.perf_counter() - t0:.1f} s")
            for size in SIZES:
                times, terms = [], 0
                for k in range(args.repeats):
                    data = pool[k * size : (k + 1) * size]
                    start = time.perf_counter()
                    status, body = server.post({"dataframe_split": {"columns": ["protein", "sequence"], "data": data}})
                    elapsed = time.perf_counter() - start
                    if status != 200:
                        raise SystemExit(f"HTTP {status}: {body}")
                    if k:  # the first request of each size warms up
                        times.append(elapsed)
                        terms += len(body["predictions"])
                med = statistics.median(times)
                rows.append((size, med, min(times), max(times), size / med, terms / len(times) / size))
    header = "| proteins per request | median latency (s) | min (s) | max (s) | proteins/s | terms per protein |"
    lines = [header, "|---|---|---|---|---|---|"]
    lines += [f"| {s} | {m:.2f} | {lo:.2f} | {hi:.2f} | {tp:.1f} | {t:.0f} |" for s, m, lo, hi, tp, t in rows]
    table = "\n".join(lines)
    print(table)
    machine = machine_line()
    write_section(
        "## Serving latency\n\n"
        f"{date.today().isoformat()}, {machine}; `python benchmarks/bench_serving.py --train {args.train} "
        f"--repeats {args.repeats}`. `mlflow models serve --env-manager local` (one worker) on 127.0.0.1, "
        "sequence-only `dataframe_split` requests of bundled test proteins; the model embeds them (tiny encoder: "
        "2 layers, 64 wide), DIAMOND searches them (params.yaml's homology settings) against "
        f"{args.train} training proteins, kNN and the naive prior vote; each size is timed over "
        f"{args.repeats - 1} requests after one warm-up (new proteins every request), client wall time.\n\n"
        f"{table}\n"
    )


if __name__ == "__main__":
    main()
