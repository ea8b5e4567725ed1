"""What checking the embedding cache's checksums costs, against reading the vectors.

A cache the size of the bundled sample's embeddings (16,390 train + 4,215 test proteins, shards of
embed.shard_size = 2048, float16) is written with the product's own writer (cache.write_shard + finalize),
or an existing cache is measured (--cache DIR). Times, page cache warm (the second of two passes):
  read     every vector read from the memory-mapped shards (np.asarray of the ShardedArray), no checking
  check    the size + sha256 check of every file against the manifest (what load_embeddings adds)
  load     load_embeddings (check included) + reading every vector

    python benchmarks/bench_integrity.py [--dim 320 64] [--cache DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cafa_mlflow.embed import cache
from cafa_mlflow.io import integrity

SAMPLE_PROTEINS = 16390 + 4215
SHARD_SIZE = 2048


def synthetic_cache(folder: Path, n: int, dim: int) -> Path:
    rng = np.random.default_rng(0)
    ranges = cache.shard_ranges(n, SHARD_SIZE)
    for k, (lo, hi) in enumerate(ranges):
        cache.write_shard(folder / cache.shard_name(k), rng.standard_normal((hi - lo, dim)).astype(np.float16))
    manifest = {
        "dim": dim,
        "ragged": False,
        "shards": [
            {"file": cache.shard_name(k), "proteins": list(r), "rows": r[1] - r[0]} for k, r in enumerate(ranges)
        ],
    }
    cache.finalize(folder, [f"P{i}" for i in range(n)], None, manifest)
    return folder


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        integrity._checked.clear()  # every pass checks afresh (a process checks a file once)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(folder: Path) -> dict:
    manifest = cache.read_manifest(folder)
    size = sum((folder / name).stat().st_size for name in manifest["checksums"])

    def read() -> None:
        emb = cache.Embeddings(
            [],
            cache.ShardedArray([np.load(folder / s["file"], mmap_mode="r") for s in manifest["shards"]]),
            None,
            manifest,
        )
        np.asarray(emb.vectors)

    def check() -> None:
        cache.check_files(folder, manifest)

    def load() -> None:
        np.asarray(cache.load_embeddings(folder).vectors)

    read()  # warm the page cache
    return {"mb": size / 2**20, "read": best_of(read), "check": best_of(check), "load": best_of(load)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, nargs="+", default=[320, 64], help="vector widths (ESM-2 8M: 320, tiny: 64)")
    parser.add_argument("--proteins", type=int, default=SAMPLE_PROTEINS)
    parser.add_argument("--cache", type=Path, help="measure this existing cache folder instead")
    args = parser.parse_args()
    rows = []
    if args.cache:
        rows.append((str(args.cache), measure(args.cache)))
    else:
        for dim in args.dim:
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(
                    (f"synthetic {args.proteins} x {dim}", measure(synthetic_cache(Path(tmp), args.proteins, dim)))
                )
    print("| cache | MB | read s | check s | check / read | load (check + read) s |\n|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['mb']:.1f} | {r['read']:.4f} | {r['check']:.4f} | {r['check'] / r['read']:.1f}x "
            f"| {r['load']:.4f} |"
        )


if __name__ == "__main__":
    main()
