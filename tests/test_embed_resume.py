"""Crash safety (kill -9 mid-run, then resume) and the 2-process torchrun/gloo sharded path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from esm_fixtures import embed, one_thread_env, one_torch_thread, same_tree, split_args, write_fasta  # noqa: F401 (fixture)

from cafa_mlflow.embed import cache, load_embeddings, make_tiny_esm

ARGS = dict(
    strategy="chunks",
    layer=-1,
    window=10,
    stride=4,
    pooling="mean",
    toks_per_batch=64,
    precision="fp32",
    device="cpu",
    shard_size=2,
    progress=False,
    max_residues=20,
)
# The child slows each shard write so that the test can kill it between shards.
CHILD = f"""
import sys, time
from cafa_mlflow.embed import cache, embed_fasta
write = cache.write_shard
def slow_write(path, vectors):
    write(path, vectors)
    time.sleep(float(sys.argv[4]))
cache.write_shard = slow_write
from cafa_mlflow.embed.settings import EmbedSettings
S, R = {repr(split_args("x", **ARGS)[0].to_dict())}, {repr(split_args("x", **ARGS)[1])}
embed_fasta(sys.argv[1], EmbedSettings(**{{**S, "esm_model": sys.argv[2]}}), sys.argv[3], **R)
"""
RANK = f"""
import os, pathlib, sys
from cafa_mlflow.embed import embed_fasta
from cafa_mlflow.embed.settings import EmbedSettings
S, R = {repr(split_args("x", **ARGS)[0].to_dict())}, {repr(split_args("x", **ARGS)[1])}
stats = embed_fasta(sys.argv[1], EmbedSettings(**{{**S, "esm_model": sys.argv[2]}}), sys.argv[3], **R).stats
# one report file per rank: stdout lines of concurrent ranks interleave
report = pathlib.Path(sys.argv[4]) / ("rank%s.txt" % os.environ["RANK"])
report.write_text("rank %s of %d computed %d" % (os.environ["RANK"], stats["world_size"], stats["n_computed"]))
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    seqs = {f"Q{i}": "MKTAYIAKQRQISFVKSHFSRQGAVLIPFW"[: 3 + (7 * i) % 28] for i in range(12)}
    return write_fasta(root / "in.fasta", seqs), str(make_tiny_esm(root / "esm2_tiny.pt"))


def child_env() -> dict:
    env = one_thread_env(dict(os.environ))
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_kill_9_then_resume_is_bit_identical(tmp_path, inputs, monkeypatch):
    fasta, ckpt = inputs
    reference = embed(fasta, ckpt, tmp_path / "ref", **ARGS).cache_dir
    out = tmp_path / "crash"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(fasta), ckpt, str(out), "0.5"], env=child_env())
    first = out / reference.name / "shard_00000.npy"
    deadline = time.monotonic() + 60
    while not first.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    crashed = out / reference.name
    done_before = sorted(p.name for p in crashed.glob("shard_*.npy"))
    assert child.returncode == -signal.SIGKILL and not (crashed / "manifest.json").exists()
    assert 1 <= len(done_before) < 6
    with pytest.raises(Exception, match="no complete embedding cache"):
        load_embeddings(crashed)

    written = []
    write = cache.write_shard
    monkeypatch.setattr(cache, "write_shard", lambda path, vectors: (written.append(path.name), write(path, vectors)))
    resumed = embed(fasta, ckpt, out, **ARGS)
    assert resumed.cache_dir == crashed and resumed.stats["n_computed"] == 12 - 2 * len(done_before)
    assert sorted(written) == sorted(f"shard_{k:05d}.npy" for k in range(6) if f"shard_{k:05d}.npy" not in done_before)
    assert same_tree(reference, crashed) == []


def test_torchrun_two_gloo_ranks_match_single_process(tmp_path, inputs):
    fasta, ckpt = inputs
    reference = embed(fasta, ckpt, tmp_path / "ref", **ARGS).cache_dir
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(fasta),
        ckpt,
        str(tmp_path / "dist"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # shards 0, 2, 4 on rank 0 and 1, 3, 5 on rank 1: two proteins each
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == [
        "rank 0 of 2 computed 6",
        "rank 1 of 2 computed 6",
    ]
    merged = tmp_path / "dist" / reference.name
    assert same_tree(reference, merged) == []
    emb = load_embeddings(merged)
    assert len(emb) == 12 and emb.manifest["shards"][-1]["file"] == "shard_00005.npy"
