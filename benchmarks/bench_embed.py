"""ESM-2 embedding throughput: our forward pass (cafa_mlflow.embed.encoder) side by side with fair-esm's module.

Random-weight ESM-2 with the real 8M/35M/150M (and, on GPU, 650M) architectures on a seeded sample of real
sequences (balanced truncation to 1022 residues), token-budget batches (`embed_units`, the product's path), fp32
and bf16. Each configuration runs in its own process (clean peak RSS, tcmalloc preloaded as the product runs);
the two forwards alternate, every configuration is repeated and the best run is kept (the machine is shared:
rates are per CPU-second). "long" rows embed the longest proteins only (1,022-residue units, 4 per batch) for
peak memory. Prints a table and refreshes its section of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_embed.py                      # forwards side by side, ~15 min on 2 cores
    .venv/bin/python benchmarks/bench_embed.py --batching           # the older naive-vs-token-budget comparison
    .venv/bin/python benchmarks/bench_embed.py --device cuda --archs 8M,150M,650M --precisions fp16,bf16
                                                                    # on a GPU (see benchmarks/gpu_embed.sh)
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
ARCHS = {"8M": (6, 320, 20), "35M": (12, 480, 20), "150M": (30, 640, 20), "650M": (33, 1280, 20)}
N_TARGET = 82_404 + 224_309  # CAFA-6 training + test proteins
MAX_RESIDUES = 1022
TOKS_PER_BATCH = 4096
NAIVE_BATCH = 8
FORWARDS = ("fair-esm", "ours")
# CPU, default run: proteins per (arch, batching); sized so that two rounds stay under ~15 minutes on 2 cores.
PROTEINS = {("8M", "budget"): 128, ("35M", "budget"): 64, ("150M", "budget"): 16, ("650M", "budget"): 8}
LONG_UNITS = 8  # "long" rows: the longest sample proteins, two batches of 4 x 1,022 residues
# --batching: the older comparison (fair-esm's forward): (arch, batching, precision, proteins)
BATCHING_CONFIGS = [
    ("8M", "budget", "fp32", 256),
    ("8M", "naive", "fp32", 256),
    ("8M", "budget", "bf16", 256),
    ("35M", "budget", "fp32", 128),
    ("35M", "naive", "fp32", 128),
    ("150M", "budget", "fp32", 48),
    ("150M", "naive", "fp32", 48),
]


def sample_units(n: int, batching: str, seed: int = 0) -> tuple[list[str], float]:
    """n balanced-truncated sample proteins (seeded random in file order; 'long': the n longest) and the mean
    truncated length of all."""
    from cafa_mlflow.embed.units import split_units
    from cafa_mlflow.io.fasta import read_fasta

    seqs = [split_units(r.sequence, "balanced", 0, 0, MAX_RESIDUES)[0] for r in read_fasta(FASTA)]
    if batching == "long":
        keep = sorted(range(len(seqs)), key=lambda i: (-len(seqs[i]), i))[:n]
    else:
        keep = sorted(random.Random(seed).sample(range(len(seqs)), n))
    return [seqs[i] for i in keep], sum(map(len, seqs)) / len(seqs)


def matmul_gflops(dtype_name: str, device, n: int = 2048, reps: int = 5) -> float:
    """torch.mm FLOPs per CPU-second of this process (all threads) on CPU, per second on CUDA (best of 3)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    n = 8192 if device.type == "cuda" else n
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    torch.mm(a, b)
    clock, best = Clock(device), 0.0
    for _ in range(3):  # best of three blocks: the machine may be shared
        clock.start()
        for _ in range(reps):
            torch.mm(a, b)
        best = max(best, 2 * n**3 * reps / clock.seconds() / 1e9)
    return best


class Clock:
    """CPU-seconds of this process on CPU; wall seconds after a synchronize on CUDA (plus peak GPU memory)."""

    def __init__(self, device):
        import torch

        self.cuda = torch.cuda if device.type == "cuda" else None
        self.device = device

    def start(self) -> None:
        if self.cuda is not None:
            self.cuda.synchronize(self.device)
            self.cuda.reset_peak_memory_stats(self.device)
            self.t = time.perf_counter()
        else:
            self.t = time.process_time()

    def seconds(self) -> float:
        if self.cuda is not None:
            self.cuda.synchronize(self.device)
            return time.perf_counter() - self.t
        return time.process_time() - self.t

    def peak_gpu_mb(self) -> float | None:
        return self.cuda.max_memory_allocated(self.device) / 2**20 if self.cuda is not None else None


def naive_embed(model, alphabet, seqs: list[str], layer: int, device) -> None:
    """Fixed batches of 8 in file order with fair-esm's batch converter and forward."""
    import torch

    convert = alphabet.get_batch_converter()
    with torch.inference_mode():
        for i in range(0, len(seqs), NAIVE_BATCH):
            chunk = seqs[i : i + NAIVE_BATCH]
            _, _, tokens = convert([(str(j), s) for j, s in enumerate(chunk)])
            reps = model(tokens.to(device), repr_layers=[layer])["representations"][layer]
            for j, s in enumerate(chunk):
                reps[j, 1 : len(s) + 1].mean(0)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def resolve(device_name: str, precision: str):
    """(torch.device, autocast dtype or None); a clear exit where the device or precision is not there."""
    import torch

    if device_name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU here (run benchmarks/gpu_embed.sh on a GPU machine)")
    if device_name == "cpu" and precision == "fp16":
        raise SystemExit("fp16 is for CUDA; on CPU use fp32 or bf16")
    device = torch.device("cuda", 0) if device_name == "cuda" else torch.device("cpu")
    return device, {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def worker(arch: str, batching: str, precision: str, n: int, forward: str, device_name: str, toks: int) -> dict:
    import torch
    from esm.data import Alphabet
    from esm.model.esm2 import ESM2

    from cafa_mlflow.embed.encoder import sdpa_backend
    from cafa_mlflow.embed.forward import _tokens, embed_units, token_table

    device, dtype = resolve(device_name, precision)
    layers, dim, heads = ARCHS[arch]
    torch.manual_seed(0)
    alphabet = Alphabet.from_architecture("ESM-1b")
    with torch.device(device):  # built where it runs: a 650M random init on the GPU takes no CPU minutes
        model = ESM2(num_layers=layers, embed_dim=dim, attention_heads=heads, alphabet=alphabet).eval()
    seqs, mean_len_all = sample_units(n, batching)
    rss_model = _rss_mb()
    fair = forward == "fair-esm"
    if batching == "naive":

        def run(s):
            naive_embed(model, alphabet, s, layers, device)
    else:

        def run(s):
            embed_units(model, alphabet, s, layers, "mean", toks, device, dtype, fair_esm=fair)

    run(seqs[:2])  # warm-up
    table = token_table(alphabet)
    padded = _tokens(seqs[: max(2, toks // (len(seqs[0]) + 2))], table, alphabet).to(device)
    backend = sdpa_backend(model, padded, dtype)  # the kernel for padded batches (key-padding mask)
    if bool(padded.eq(alphabet.padding_idx).any()):
        backend += f" (unpadded: {sdpa_backend(model, _tokens(seqs[:1], table, alphabet).to(device), dtype)})"
    clock = Clock(device)
    t = time.perf_counter()
    clock.start()
    run(seqs)
    busy, seconds = clock.seconds(), time.perf_counter() - t
    residues = sum(map(len, seqs))
    params = sum(p.numel() for p in model.layers.parameters())  # what both forwards must compute: the layers
    tokens = [len(s) + 2 for s in seqs]
    flops = 2 * params * sum(tokens) + 4 * layers * dim * sum(x * x for x in tokens)  # useful (unpadded) work
    return {
        "arch": arch,
        "batching": batching,
        "precision": precision,
        "forward": forward,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "proteins": n,
        "residues": residues,
        "mean_len": residues / n,
        "seconds": seconds,
        "residues_per_s": residues / seconds,
        "busy_seconds": busy,  # CPU-seconds on CPU, synchronized wall seconds on CUDA
        "residues_per_busy_s": residues / busy,
        "gflops_per_busy_s": flops / busy / 1e9,
        "matmul_gflops_per_busy_s": matmul_gflops(precision, device),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_model_mb": rss_model,
        "peak_gpu_mb": clock.peak_gpu_mb(),
        "sdpa_backend": backend if forward == "ours" else "none (fair-esm: explicit bmm + softmax per head)",
        "mean_len_sample_file": mean_len_all,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def run_config(arch, batching, precision, n, forward, device, toks, tcmalloc=True) -> dict:
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["OMP_WAIT_POLICY"] = "PASSIVE"  # idle OpenMP threads sleep: CPU time then counts work, not spinning
    env["PYTHONPATH"] = str(ROOT)
    if tcmalloc:
        env["LD_PRELOAD"] = TCMALLOC
    cmd = [sys.executable, __file__, "--worker", arch, batching, precision, str(n), forward, device, str(toks)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "tcmalloc": tcmalloc}


def _share(r: dict) -> str:
    return (
        f"{r['gflops_per_busy_s'] / r['matmul_gflops_per_busy_s']:.0%} "
        f"({r['gflops_per_busy_s']:.1f} of {r['matmul_gflops_per_busy_s']:.1f})"
    )


def forward_table(rows: list[dict], cuda: bool) -> str:
    """One row per (arch, batching, precision, forward), fair-esm first; speedup per busy second."""
    per = "s (GPU, synchronized)" if cuda else "CPU-s"
    memory = "peak GPU MB" if cuda else "peak RSS MB (model loaded)"
    head = (
        f"| model | batching | precision | forward | proteins (mean length) | residues per {per} | speedup "
        f"| residues/s (wall) | share of matmul rate (GFLOP per {per}) | {memory} | SDPA kernel |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    base = {(r["arch"], r["batching"], r["precision"]): r for r in rows if r["forward"] == "fair-esm"}
    lines = []
    for r in rows:
        ref = base.get((r["arch"], r["batching"], r["precision"]))
        speedup = f"{r['residues_per_busy_s'] / ref['residues_per_busy_s']:.2f}x" if ref else "-"
        mem = f"{r['peak_gpu_mb']:,.0f}" if cuda else f"{r['peak_rss_mb']:,.0f} ({r['rss_model_mb']:,.0f})"
        lines.append(
            f"| {r['arch']} | {r['batching']} | {r['precision']} | {r['forward']} | {r['proteins']} ({r['mean_len']:.0f}) "
            f"| {r['residues_per_busy_s']:,.0f} | {speedup} | {r['residues_per_s']:,.0f} | {_share(r)} | {mem} "
            f"| {r['sdpa_backend']} |"
        )
    return head + "\n".join(lines) + "\n"


def summary(rows: list[dict], cuda: bool) -> str:
    pick = {(r["arch"], r["batching"], r["precision"], r["forward"]): r for r in rows}
    goals = {"8M": 1.6, "35M": 1.3}
    out = []
    for arch in ARCHS:
        for precision in ("fp32", "bf16", "fp16"):
            fair, ours = (pick.get((arch, "budget", precision, f)) for f in FORWARDS)
            if fair and ours:
                x = ours["residues_per_busy_s"] / fair["residues_per_busy_s"]
                goal = f"; goal >= {goals[arch]}x" if precision == "fp32" and not cuda and arch in goals else ""
                out.append(f"- {arch} {precision}, token budget: ours / fair-esm = {x:.2f}x{goal}")
        if not cuda:
            fp32, bf16 = (pick.get((arch, "budget", p, "ours")) for p in ("fp32", "bf16"))
            if fp32 and bf16:
                x = bf16["residues_per_busy_s"] / fp32["residues_per_busy_s"]
                out.append(f"- {arch}, our forward: bf16 / fp32 = {x:.2f}x per CPU-second")
    return "\n".join(out) + "\n"


def batching_table(rows: list[dict]) -> str:
    cores = os.cpu_count()
    head = (
        "| model | batching | precision | proteins | residues/s (wall) | proteins/s (wall) | residues per CPU-s "
        f"| share of matmul rate | peak RSS MB | projected h, 306,713 proteins, {cores} dedicated cores |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        hours = N_TARGET * r["mean_len_sample_file"] / (r["residues_per_busy_s"] * cores) / 3600
        lines.append(
            f"| {r['arch']} | {r['batching']} | {r['precision']} | {r['proteins']} "
            f"| {r['residues_per_s']:,.0f} | {r['proteins'] / r['seconds']:.2f} | {r['residues_per_busy_s']:,.0f} "
            f"| {_share(r)} GFLOP per CPU-s | {r['peak_rss_mb']:,.0f} | {hours:,.1f} |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--archs", default="8M,35M,150M", help="comma-separated: 8M, 35M, 150M, 650M")
    parser.add_argument("--precisions", default=None, help="comma-separated; default fp32,bf16 (cuda: fp16,bf16)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the proteins per configuration")
    parser.add_argument("--toks-per-batch", type=int, default=None, help="default 4096 (cuda: 16384)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds; the best run of each configuration is kept")
    parser.add_argument("--no-long", action="store_true", help="skip the long-protein (peak memory) rows")
    parser.add_argument("--batching", action="store_true", help="the older naive vs token-budget comparison")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md as it is")
    parser.add_argument("--date", default=time.strftime("%Y-%m-%d"))
    parser.add_argument("--machine", default=f"{os.cpu_count()}-core CPU")
    args = parser.parse_args()
    if args.worker:
        arch, batching, precision, n, forward, device, toks = args.worker
        print(json.dumps(worker(arch, batching, precision, int(n), forward, device, int(toks))))
        return
    cuda = args.device == "cuda"
    if not cuda and not Path(TCMALLOC).exists():
        raise SystemExit(f"{TCMALLOC} missing (apt-get install libtcmalloc-minimal4): the product runs with it")
    toks = args.toks_per_batch or (16384 if cuda else TOKS_PER_BATCH)
    command = shlex.join(["benchmarks/bench_embed.py"] + sys.argv[1:])
    if args.batching:
        rows = [run_config(a, b, p, n, "fair-esm", "cpu", TOKS_PER_BATCH) for a, b, p, n in BATCHING_CONFIGS]
        body = (
            f"Command: `.venv/bin/python {command}`\n\n{args.machine}, {args.date}, fair-esm's forward, token budget "
            f"{TOKS_PER_BATCH} vs fixed batches of {NAIVE_BATCH} in file order, tcmalloc preloaded.\n\n"
            + batching_table(rows)
        )
        print(body)
        if not args.no_write:
            write_section("## Embedding throughput\n\n" + body)
        return
    precisions = (args.precisions or ("fp16,bf16" if cuda else "fp32,bf16")).split(",")
    configs = []
    for arch in args.archs.split(","):
        n = max(2, round(PROTEINS[(arch, "budget")] * args.scale * (64 if cuda else 1)))
        configs += [(arch, "budget", p, n) for p in precisions]
        if not args.no_long:
            configs.append((arch, "long", precisions[0], LONG_UNITS * (8 if cuda else 1)))
    best: dict[tuple, dict] = {}
    for rep in range(args.repeats):
        for config in configs:
            order = FORWARDS if rep % 2 == 0 else FORWARDS[::-1]  # alternate who goes first: side by side
            for forward in order:
                row = run_config(*config, forward, args.device, toks)
                key = (*config, forward)
                print(json.dumps(row), file=sys.stderr)
                if key not in best or row["residues_per_busy_s"] > best[key]["residues_per_busy_s"]:
                    best[key] = row
    rows = [best[(*c, f)] for c in configs for f in FORWARDS]
    r0 = rows[0]
    where = f"{r0['gpu']}" if cuda else f"torch threads {r0['threads']}, tcmalloc preloaded"
    body = (
        f"Command: `.venv/bin/python {command}`\n\n{args.machine}, {args.date}, torch {r0['torch']}, {where}. "
        "Random-weight ESM-2 architectures; seeded random sample of "
        f"{FASTA.relative_to(ROOT)} in file order, balanced truncation to {MAX_RESIDUES}; token budget {toks} "
        "(`cafa_mlflow.embed.forward.embed_units`, mean pooling of the last layer). fair-esm = its ESM2 module's "
        "forward (all layers, LM head, attention per head with explicit score matrices); ours = "
        "`cafa_mlflow.embed.encoder.representations` (scaled_dot_product_attention, fused q/k/v, stops at the "
        "layer). 'long' = the longest sample proteins (1,022-residue units, 4 per batch). bf16/fp16 = autocast. "
        f"Each configuration in its own process, {args.repeats} rounds alternating which forward goes first, best "
        "run kept. "
        + (
            "Rates per second of synchronized GPU time; peak GPU MB = torch.cuda.max_memory_allocated."
            if cuda
            else "Rates per CPU-second (user + system of all threads, OMP_WAIT_POLICY=PASSIVE): independent of "
            "other jobs on the shared machine; wall rates depend on the load. Share of matmul rate = useful "
            "forward FLOPs (2 x layer params x tokens + 4 x layers x dim x tokens^2, unpadded) / the 2048^3 "
            "torch.mm rate of the same precision in the same process. Peak RSS = ru_maxrss of the process "
            "(in brackets: RSS once the model is built)."
        )
        + "\n\n"
        + forward_table(rows, cuda)
        + "\n"
        + summary(rows, cuda)
    )
    print(body)
    if not args.no_write:
        title = "## Embedding forward: ours vs fair-esm" + (" on GPU" if cuda else "")
        write_section(title + "\n\n" + body)


if __name__ == "__main__":
    main()
