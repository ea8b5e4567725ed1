"""ESM-2 embedding throughput on CPU: naive batches of 8 (file order) vs token-budget batching.

Random-weight ESM-2 with the real 8M/35M/150M architectures on a seeded sample of real sequences
(balanced truncation to 1022 residues). Each configuration runs in its own process (clean peak RSS,
with or without tcmalloc preloaded). Prints a table and refreshes `## Embedding throughput` in
benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_embed.py            # about 8 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

from results_md import write_section  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

ROOT = Path(__file__).resolve().parent.parent
FASTA = ROOT / "data/sample/train/train_sequences.fasta.xz"
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
ARCHS = {"8M": (6, 320, 20), "35M": (12, 480, 20), "150M": (30, 640, 20)}
N_TARGET = 82_404 + 224_309  # CAFA-6 training + test proteins
MAX_RESIDUES = 1022
TOKS_PER_BATCH = 4096
NAIVE_BATCH = 8
# (arch, batching, precision, tcmalloc, proteins): sized so the whole run stays under ~8 minutes.
CONFIGS = [
    ("8M", "budget", "fp32", True, 256),
    ("8M", "naive", "fp32", True, 256),
    ("8M", "budget", "bf16", True, 256),
    ("35M", "budget", "fp32", True, 128),
    ("35M", "naive", "fp32", True, 128),
    ("150M", "budget", "fp32", True, 48),
    ("150M", "naive", "fp32", True, 48),
]


def sample_units(n: int, seed: int = 0) -> tuple[list[str], float]:
    """n seeded-random sample proteins in file order, balanced-truncated; and the mean length of all."""
    from cafa_mlflow.embed.units import split_units
    from cafa_mlflow.io.fasta import read_fasta

    seqs = [split_units(r.sequence, "balanced", 0, 0, MAX_RESIDUES)[0] for r in read_fasta(FASTA)]
    keep = sorted(random.Random(seed).sample(range(len(seqs)), n))
    return [seqs[i] for i in keep], sum(map(len, seqs)) / len(seqs)


def matmul_gflops(dtype_name: str, n: int = 2048, reps: int = 5) -> float:
    """torch.mm FLOPs per CPU-second of this process (all threads), like the forward pass below."""
    import torch

    dtype = getattr(torch, {"fp32": "float32", "bf16": "bfloat16"}[dtype_name])
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    t = time.process_time()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n**3 * reps / (time.process_time() - t) / 1e9


def naive_embed(model, alphabet, seqs: list[str], layer: int):
    """Fixed batches of 8 in file order with fair-esm's batch converter."""
    import torch

    convert = alphabet.get_batch_converter()
    with torch.inference_mode():
        for i in range(0, len(seqs), NAIVE_BATCH):
            chunk = seqs[i : i + NAIVE_BATCH]
            _, _, tokens = convert([(str(j), s) for j, s in enumerate(chunk)])
            reps = model(tokens, repr_layers=[layer])["representations"][layer]
            for j, s in enumerate(chunk):
                reps[j, 1 : len(s) + 1].mean(0)


def worker(arch: str, batching: str, precision: str, n: int) -> dict:
    import torch
    from esm.data import Alphabet
    from esm.model.esm2 import ESM2

    from cafa_mlflow.embed.forward import embed_units

    layers, dim, heads = ARCHS[arch]
    torch.manual_seed(0)
    alphabet = Alphabet.from_architecture("ESM-1b")
    model = ESM2(num_layers=layers, embed_dim=dim, attention_heads=heads, alphabet=alphabet).eval()
    seqs, mean_len_all = sample_units(n)
    dtype = torch.bfloat16 if precision == "bf16" else None
    run = (
        (lambda s: embed_units(model, alphabet, s, layers, "mean", TOKS_PER_BATCH, torch.device("cpu"), dtype))
        if batching == "budget"
        else (lambda s: naive_embed(model, alphabet, s, layers))
    )
    run(seqs[:2])  # warm-up
    t, cpu = time.perf_counter(), time.process_time()
    run(seqs)
    seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - cpu
    residues = sum(map(len, seqs))
    params = sum(p.numel() for p in model.parameters()) - model.embed_tokens.weight.numel()
    tokens = [len(s) + 2 for s in seqs]
    flops = 2 * params * sum(tokens) + 4 * layers * dim * sum(x * x for x in tokens)  # useful (unpadded) work
    return {
        "arch": arch,
        "batching": batching,
        "precision": precision,
        "proteins": n,
        "residues": residues,
        "seconds": seconds,
        "residues_per_s": residues / seconds,
        "proteins_per_s": n / seconds,
        "cpu_seconds": cpu_seconds,
        "residues_per_cpu_s": residues / cpu_seconds,
        "gflops_per_cpu_s": flops / cpu_seconds / 1e9,
        "matmul_gflops_per_cpu_s": matmul_gflops(precision),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "mean_len_sample_file": mean_len_all,
        "threads": torch.get_num_threads(),
    }


def run_config(arch, batching, precision, tcmalloc, n) -> dict:
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["OMP_WAIT_POLICY"] = "PASSIVE"  # idle OpenMP threads sleep: CPU time then counts work, not spinning
    if tcmalloc:
        env["LD_PRELOAD"] = TCMALLOC
    cmd = [sys.executable, __file__, "--worker", arch, batching, precision, str(n)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return {**json.loads(out.strip().splitlines()[-1]), "tcmalloc": tcmalloc}


def table(rows: list[dict]) -> str:
    cores = os.cpu_count()
    head = (
        "| model | batching | precision | proteins | residues/s (wall) | proteins/s (wall) | residues per CPU-s "
        f"| share of matmul rate | peak RSS MB | projected h, 306,713 proteins, {cores} dedicated cores |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        hours = N_TARGET * r["mean_len_sample_file"] / (r["residues_per_cpu_s"] * cores) / 3600
        share = r["gflops_per_cpu_s"] / r["matmul_gflops_per_cpu_s"]
        lines.append(
            f"| {r['arch']} | {r['batching']} | {r['precision']} | {r['proteins']} "
            f"| {r['residues_per_s']:,.0f} | {r['proteins_per_s']:.2f} | {r['residues_per_cpu_s']:,.0f} "
            f"| {share:.0%} ({r['gflops_per_cpu_s']:.1f} of {r['matmul_gflops_per_cpu_s']:.1f} GFLOP per CPU-s) "
            f"| {r['peak_rss_mb']:,.0f} | {hours:,.1f} |"
        )
    return head + "\n".join(lines) + "\n"


def ratios(rows: list[dict]) -> str:
    out = []
    for arch in ARCHS:
        pick = {r["batching"]: r for r in rows if r["arch"] == arch and r["precision"] == "fp32" and r["tcmalloc"]}
        if {"budget", "naive"} <= pick.keys():
            cpu = pick["budget"]["residues_per_cpu_s"] / pick["naive"]["residues_per_cpu_s"]
            wall = pick["budget"]["residues_per_s"] / pick["naive"]["residues_per_s"]
            out.append(
                f"- {arch}: token-budget / naive = {cpu:.2f}x per CPU-second ({wall:.2f}x wall clock); goal >= 2x"
            )
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=4, metavar=("ARCH", "BATCHING", "PRECISION", "N"))
    parser.add_argument("--date", default=time.strftime("%Y-%m-%d"))
    parser.add_argument("--machine", default=f"{os.cpu_count()}-core CPU")
    args = parser.parse_args()
    if args.worker:
        arch, batching, precision, n = args.worker
        print(json.dumps(worker(arch, batching, precision, int(n))))
        return
    rows = []
    for config in CONFIGS:
        if config[3] and not Path(TCMALLOC).exists():
            print(f"skip {config}: {TCMALLOC} missing (apt-get install libtcmalloc-minimal4)", file=sys.stderr)
            continue
        rows.append(run_config(*config))
        print(json.dumps(rows[-1]), file=sys.stderr)
    command = shlex.join(["benchmarks/bench_embed.py"] + sys.argv[1:])
    body = (
        f"Command: `.venv/bin/python {command}`\n\n{args.machine}, {args.date}, torch threads {rows[0]['threads']}, random-weight ESM-2 architectures, "
        f"seeded random sample of {FASTA.relative_to(ROOT)} in file order, balanced truncation to {MAX_RESIDUES}. "
        f"Token budget {TOKS_PER_BATCH} (length-sorted, `cafa_mlflow.embed.forward.embed_units`), naive = fair-esm "
        f"batch converter, fixed batches of {NAIVE_BATCH} in file order. Share of matmul rate = useful forward FLOPs "
        "(2 x non-embedding params x tokens + 4 x layers x dim x tokens^2, unpadded) / measured 2048^3 torch.mm rate "
        "of the same precision, both per CPU-second of the process. CPU-seconds (user + system of all threads, with "
        "OMP_WAIT_POLICY=PASSIVE so idle threads do not spin) measure the work done independently of other jobs "
        "on the machine; wall-clock rates depend on the load. Projection: 82,404 + 224,309 proteins x the mean "
        f"balanced-truncated length of all {FASTA.name} proteins ({rows[0]['mean_len_sample_file']:.0f} residues) / "
        f"(residues per CPU-s x {os.cpu_count()} cores), i.e. for the machine to itself. All rows preload tcmalloc.\n\n"
        + table(rows)
        + "\n"
        + ratios(rows)
    )
    print(body)
    write_section("## Embedding throughput\n\n" + body)


if __name__ == "__main__":
    main()
