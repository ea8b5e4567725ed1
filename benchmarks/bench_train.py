"""One training epoch of the neural predictor at CAFA-6 shape on CPU: time and peak RSS.

Shape: 82,404 proteins x 1,280-d float16 embeddings (a memory-mapped file, like the embed cache),
26,125 terms (BPO/CCO/MFO 16,000/3,000/7,125), sparse synthetic propagated labels (50-100 terms per
protein, Zipf-like term frequencies). Model and hyper-parameters: params.yaml's `train:` block (multitask
by default). Each measurement runs in a fresh subprocess so that its peak RSS is its own.

  python benchmarks/bench_train.py                  # full epoch (+ a 10 % validation pass)
  python benchmarks/bench_train.py --batches 40     # time 40 batches and extrapolate to the epoch
Prints a table and refreshes the "## Training at CAFA-6 scale" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_md import write_section  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

ROOT = Path(__file__).resolve().parents[1]
N_PROTEINS, DIM = 82_404, 1_280
ASPECT_SIZES = {"BPO": 16_000, "CCO": 3_000, "MFO": 7_125}  # 26,125 terms
TERMS_PER_PROTEIN = (50, 100)
VAL_FRACTION = 0.1
SECTION = "## Training at CAFA-6 scale"


def synthetic(tmp: Path, seed: int = 0):
    """(float16 memmap N x D, CSR labels N x T, term_aspect)."""
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    x = np.lib.format.open_memmap(tmp / "x.npy", mode="w+", dtype=np.float16, shape=(N_PROTEINS, DIM))
    for start in range(0, N_PROTEINS, 8192):
        stop = min(start + 8192, N_PROTEINS)
        x[start:stop] = rng.standard_normal((stop - start, DIM), dtype=np.float32)
    x.flush()
    n_terms = sum(ASPECT_SIZES.values())
    term_aspect = np.concatenate([np.full(n, a) for a, n in ASPECT_SIZES.items()])
    p = 1.0 / np.arange(1, n_terms + 1)
    p = rng.permutation(p / p.sum())
    counts = rng.integers(TERMS_PER_PROTEIN[0], TERMS_PER_PROTEIN[1] + 1, size=N_PROTEINS)
    cols = rng.choice(n_terms, size=int(counts.sum()), p=p)
    rows = np.repeat(np.arange(N_PROTEINS), counts)
    y = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(N_PROTEINS, n_terms))
    y.data[:] = 1.0  # duplicates summed -> 0/1
    return np.load(tmp / "x.npy", mmap_mode="r"), y, term_aspect


def worker(batches: int) -> dict:
    """Runs in the subprocess: one (possibly partial) epoch + a validation pass; returns the numbers."""
    import numpy as np
    import torch

    from cafa_mlflow.config.params_file import load_params
    from cafa_mlflow.config.train_params import TrainParams
    from cafa_mlflow.predictors.neural.data import DenseInputs, SubsetInputs
    from cafa_mlflow.predictors.neural.losses import build_loss
    from cafa_mlflow.predictors.neural.models import build_model, prior_logits
    from cafa_mlflow.predictors.neural.scoring import evaluate_batches
    from cafa_mlflow.predictors.neural.training import seed_everything, train_epoch

    tp = TrainParams.from_dict(load_params(ROOT / "params.yaml")["train"])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        x, y, term_aspect = synthetic(Path(tmp))
        t_data = time.perf_counter() - t0
        n_val = int(N_PROTEINS * VAL_FRACTION)
        order = np.random.default_rng(1).permutation(N_PROTEINS)
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        n_batches_epoch = -(-len(train_idx) // tp.batch_size)
        run_batches = n_batches_epoch if batches <= 0 else min(batches, n_batches_epoch)
        part = np.sort(np.random.default_rng(2).permutation(train_idx)[: run_batches * tp.batch_size])
        inputs, y_part = SubsetInputs(DenseInputs(x), part), y[part]
        seed_everything(tp.seed)
        model = build_model(tp, DIM, term_aspect)
        model.set_output_bias(prior_logits(y[train_idx]))
        loss_fn = build_loss(tp, y[train_idx], term_aspect)
        opt = torch.optim.AdamW(model.parameters(), lr=tp.lr, weight_decay=tp.weight_decay)
        t0 = time.perf_counter()
        loss = train_epoch(
            model, loss_fn, opt, inputs, y_part, tp.batch_size, tp.grad_accum_steps, np.random.default_rng(tp.seed)
        )
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        val_loss, scores = evaluate_batches(
            model, SubsetInputs(DenseInputs(x), val_idx), y[val_idx], loss_fn, tp.inference_batch_size, tp.min_score
        )
        t_val = time.perf_counter() - t0
    return {
        "model": tp.model,
        "loss": tp.loss,
        "batch_size": tp.batch_size,
        "hidden_dim": tp.hidden_dim,
        "n_train": len(train_idx),
        "n_val": n_val,
        "n_terms": int(y.shape[1]),
        "labels_per_protein": float(y.nnz / N_PROTEINS),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "threads": torch.get_num_threads(),
        "batches": run_batches,
        "batches_epoch": n_batches_epoch,
        "data_s": t_data,
        "train_s": t_train,
        "train_epoch_s": t_train * n_batches_epoch / run_batches,
        "val_s": t_val,
        "val_nnz_per_protein": scores.nnz / n_val,
        "train_loss": loss,
        "val_loss": val_loss,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def table(r: dict) -> str:
    extrapolated = r["batches"] < r["batches_epoch"]
    rows = [
        (
            "model / loss / batch",
            f"{r['model']} / {r['loss']} / {r['batch_size']} (hidden {r['hidden_dim']}, "
            f"{r['params_m']:.1f} M parameters)",
        ),
        (
            "data",
            f"{r['n_train']:,} train + {r['n_val']:,} val proteins x {DIM:,}-d fp16 memmap, {r['n_terms']:,} terms, "
            f"{r['labels_per_protein']:.1f} labels/protein",
        ),
        ("torch threads", str(r["threads"])),
        (
            "batches timed",
            f"{r['batches']} of {r['batches_epoch']}" + (" (epoch time extrapolated)" if extrapolated else ""),
        ),
        ("train pass", f"{r['train_s']:.1f} s ({r['train_s'] / r['batches'] * 1000:.0f} ms/batch)"),
        ("**epoch (train pass)**", f"**{r['train_epoch_s']:.0f} s** ({r['train_epoch_s'] / 60:.1f} min)"),
        (
            "validation pass (loss + sparse scores)",
            f"{r['val_s']:.1f} s, {r['val_nnz_per_protein']:.0f} scores/protein kept",
        ),
        ("**peak RSS**", f"**{r['peak_rss_gb']:.2f} GB** (limit 6 GB)"),
        ("synthetic data build", f"{r['data_s']:.1f} s (not part of the epoch)"),
    ]
    return "\n".join(["| quantity | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=0, help="time this many batches and extrapolate (0 = full epoch)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--note", default="", help="free text added under the table (e.g. machine load)")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.batches)))
        return
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--batches", str(args.batches)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode:
        sys.exit(f"worker failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    wall = time.perf_counter() - t0
    body = table(result)
    print(body)
    print(f"(subprocess wall time {wall:.0f} s)")
    if not args.no_write:
        cpu = platform.processor() or platform.machine()
        cmdline = "python benchmarks/bench_train.py" + (f" --batches {args.batches}" if args.batches else "")
        text = (
            f"{SECTION}\n\nMachine: {os.cpu_count()} CPU cores ({cpu}), Linux, torch "
            f"{__import__('torch').__version__} CPU; date {datetime.date.today().isoformat()}; "
            f"command `{cmdline}` (one subprocess, peak RSS = its ru_maxrss).\n\n{body}\n"
        )
        if args.note:
            text += f"\n{args.note}\n"
        write_section(text)


if __name__ == "__main__":
    main()
