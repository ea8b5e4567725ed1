"""Serving latency and throughput of the default champion: `mlflow models serve` answering sequence-only requests
of 1 and 100 proteins, and the answers compared with `cafa predict` of the same proteins.

The model: a saved ensemble (default: the champion the default main job wrote, <outputs.predictions>/ensemble/
model: naive, homology, reference, knn, neural), its homology and reference members set to search with the engine
params.yaml names (`--engine` overrides both; the saved files do not depend on it), logged to a temporary store
with the product's `log_go_model` and served from a copy of its artifacts with `--env-manager local` on
127.0.0.1. Queries are bundled test proteins, new ones every batch, each batch sent once per answer layout
(`--orients records,list`: MLflow's records, or `"params": {"orient": "list"}`, one list per column); the first batch
of each size warms up. The last 100-protein request is also scored by `cafa predict` (a FASTA of the same proteins, the same logged
model): its submission lines must equal the served answer. Prints a table and refreshes `## Serving latency` in
benchmarks/RESULTS.md. (`build_model` / `fit_and_log`: the small naive + knn + homology model other benchmarks
serve.)

    python benchmarks/bench_serving.py [--model outputs/predictions/ensemble/model] [--engine mmseqs2] \
        [--orients records,list]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import random
import statistics
import subprocess
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


def champion(tmp: Path, model: str, engine: str | None) -> tuple[str, str]:
    """The saved ensemble with its homology and reference members on params.yaml's engine (or `engine`), logged
    with log_go_model to a sqlite store in `tmp` (the active tracking URI afterwards); (model URI, artifacts)."""
    import mlflow

    from cafa_mlflow.config.params_file import load_params
    from cafa_mlflow.config.schema import Params
    from cafa_mlflow.data.search_engine import SearchEngine
    from cafa_mlflow.predictors.base import Predictor
    from cafa_mlflow.serving.pyfunc import log_go_model

    raw = load_params(ROOT / "params.yaml")
    params = Params.from_dict(raw)
    ensemble = Predictor.load(model)
    for name, block in (("homology", params.homology), ("reference", params.reference)):
        if name in getattr(ensemble, "members", {}):
            chosen = SearchEngine.from_block(block)
            ensemble.members[name].use_engine(dataclasses.replace(chosen, engine=engine) if engine else chosen)
    folder = ensemble.save(tmp / "ensemble")
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("bench", artifact_location=str(tmp / "artifacts")))
    with mlflow.start_run():
        info = log_go_model(
            folder, raw["data"]["obo"], raw["submission"], embed_runtime=raw["embed"], serving=raw["serving"]
        )
    return info.model_uri, mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp / "model"))


def predict_rows(uri: str, tmp: Path, records: list[list[str]]) -> list[tuple[str, str, float]]:
    """(protein, term, score) lines of `cafa predict` of `records` with the model at `uri` (the temporary store)."""
    import mlflow

    from cafa_mlflow.io.fasta import write_fasta

    fasta, out = tmp / "compare.fasta", tmp / "compare.tsv"
    write_fasta(fasta, [(pid, seq) for pid, seq in records])
    flags = ["--fasta", str(fasta), "--out", str(out), "--model-uri", uri, "--reuse", "false"]
    flags += ["--tracking.uri", mlflow.get_tracking_uri(), "--embed.out", str(tmp / "embeddings")]
    subprocess.run([sys.executable, "-m", "pipelines", "predict", *flags], cwd=ROOT, check=True)
    rows = [line.split("\t") for line in out.read_text().splitlines() if line]
    return [(p, t, float(v)) for p, t, v in rows]


def server_cpu(server) -> float:
    """CPU seconds the server's processes used so far: each live process and the children it waited for (the
    aligners a request starts)."""
    import psutil

    root = psutil.Process(server.proc.pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        t = proc.cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
    return total


def answer_rows(body: dict) -> list[tuple[str, str, float]]:
    """(protein, term, score) of a served answer, records (the default) or one list per column (orient=list)."""
    found = body["predictions"]
    if isinstance(found, dict):
        return list(zip(found["protein"], found["term"], map(float, found["score"])))
    return [(r["protein"], r["term"], float(r["score"])) for r in found]


def time_requests(
    server, pool: list[list[str]], size: int, repeats: int, orients: list[str]
) -> tuple[list[tuple], list, dict]:
    """(a table row per answer layout, the last request's records, its answer) over `repeats` requests after a
    warm-up; every batch of proteins is sent once per layout, so the layouts are timed on the same proteins."""
    times = {o: [] for o in orients}
    cpus = {o: [] for o in orients}
    terms = dict.fromkeys(orients, 0)
    body, data = {}, []
    for k in range(repeats + 1):
        data, pool[:] = pool[:size], pool[size:]
        for orient in orients:
            params = {} if orient == "records" else {"params": {"orient": orient}}
            start, cpu = time.perf_counter(), server_cpu(server)
            request = {"dataframe_split": {"columns": ["protein", "sequence"], "data": data}, **params}
            status, body = server.post(request, 600)
            elapsed = time.perf_counter() - start
            if status != 200:
                raise SystemExit(f"HTTP {status}: {body}")
            if k:  # the first batch of each size warms up
                times[orient].append(elapsed)
                cpus[orient].append(server_cpu(server) - cpu)
                terms[orient] += len(answer_rows(body))
    rows = []
    for o in orients:
        med = statistics.median(times[o])
        cpu = statistics.median(cpus[o])
        rows.append((size, o, med, min(times[o]), max(times[o]), size / med, cpu, terms[o] / repeats / size))
    return rows, data, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="saved ensemble (default: the main job's champion)")
    parser.add_argument("--engine", default=None, choices=("diamond", "mmseqs2"), help="default: params.yaml's")
    parser.add_argument("--repeats", type=int, default=5, help="timed requests per size (after one warm-up)")
    parser.add_argument("--sizes", default="1,100")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--orients", default="records", help="answer layouts to time: records (the default) and/or list"
    )
    args = parser.parse_args()
    from cafa_mlflow.config.params_file import load_params
    from cafa_mlflow.serving.server import serve

    model = args.model or str(Path(load_params(ROOT / "params.yaml")["outputs"]["predictions"]) / "ensemble/model")
    sizes = [int(s) for s in args.sizes.split(",")]
    orients = args.orients.split(",")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        t0 = time.perf_counter()
        uri, folder = champion(Path(tmp), model, args.engine)
        print(f"model saved and logged in {time.perf_counter() - t0:.1f} s")
        pool = queries(sum(sizes) * (args.repeats + 1), args.seed)
        rows, last = [], ([], {})
        t0 = time.perf_counter()
        with serve(folder, timeout=900) as server:
            print(f"server up in {time.perf_counter() - t0:.1f} s")
            for size in sizes:
                size_rows, data, body = time_requests(server, pool, size, args.repeats, orients)
                rows += size_rows
                print(*size_rows, sep="\n", flush=True)
                last = (data, body)
        same = predict_rows(uri, Path(tmp), last[0]) == answer_rows(last[1])
    report(args, model, load, rows, len(last[0]), same)


def report(args: argparse.Namespace, model: str, load: float, rows: list[tuple], compared: int, same: bool) -> None:
    header = (
        "| proteins per request | answer (`orient`) | median latency (s) | min (s) | max (s) | proteins/s | server CPU s "
        "per request (median) | terms per protein |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    lines += [
        f"| {s} | {o} | {m:.2f} | {lo:.2f} | {hi:.2f} | {tp:.1f} | {c:.2f} | {t:.0f} |"
        for s, o, m, lo, hi, tp, c, t in rows
    ]
    table = "\n".join(lines)
    print(table)
    print(f"served answer == cafa predict ({compared} proteins): {same}")
    engine = f" --engine {args.engine}" if args.engine else ""
    write_section(
        "## Serving latency\n\n"
        f"{date.today().isoformat()}, {machine_line()} (at the start: {load:.1f}); `python benchmarks/bench_serving.py "
        f"--model {model}{engine} --repeats {args.repeats} --sizes {args.sizes} --orients {args.orients}`. The default champion (every member: "
        "naive, homology, reference, knn, neural) served by `mlflow models serve --env-manager local` (one worker) on "
        "127.0.0.1, sequence-only `dataframe_split` requests of bundled test proteins (new ones every batch, "
        f"{args.repeats} timed after one warm-up per size, each batch sent once per answer layout, client wall time including the decoding of the answer; server CPU: the server's processes and "
        f"the aligners they ran, the steadier number on a shared machine). The last {compared}-protein answer "
        f"{'equals' if same else 'DIFFERS FROM'} `cafa predict` of the same proteins with the same logged model, "
        "line for line.\n\n"
        f"{table}\n"
    )


if __name__ == "__main__":
    main()
