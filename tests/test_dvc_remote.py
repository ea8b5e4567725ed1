"""docs/dvc.md's route for a user's own data, run for real on small folders in a temporary git repo:
`dvc add` of a Kaggle-style CAFA-6 folder and of an embedding-cache-like folder, a default local directory
remote, `dvc push`, delete, `dvc pull`, files identical. Also: the embed stage's `cache: false` + `persist`
keeps a cache that `dvc exp run` would otherwise delete, and what `dvc exp run -S` does to params.yaml."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DVC = Path(sys.executable).with_name("dvc")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DVC.exists() or shutil.which("git") is None, reason="needs dvc and git"),
]


def run(cwd: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t"}
    env.update({"GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_EMAIL": "t@example.org"})
    cmd = [str(DVC), *args[1:]] if args[0] == "dvc" else list(args)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    run(root, "git", "init", "-q")
    run(root, "dvc", "init", "-q")
    run(root, "dvc", "config", "core.analytics", "false")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "dvc init")
    return root


def kaggle_folder(root: Path) -> Path:
    """A few files laid out like Kaggle's CAFA-6 download."""
    data = root / "data" / "cafa6"
    (data / "Train").mkdir(parents=True)
    (data / "Test").mkdir()
    (data / "Train" / "train_sequences.fasta").write_text(">sp|P1|A_HUMAN x OX=9606\nMKV\n")
    (data / "Train" / "train_terms.tsv").write_text("EntryID\tterm\taspect\nP1\tGO:0000002\tP\n")
    (data / "Train" / "go-basic.obo").write_text("format-version: 1.2\n")
    (data / "Test" / "testsuperset.fasta").write_text(">Q1 9606\nMKVL\n")
    (data / "IA.tsv").write_text("GO:0000002\t1.5\n")
    return data


def embedding_folder(root: Path) -> Path:
    """Like outputs/embeddings/<key>/: a manifest and binary shards."""
    cache = root / "embeddings" / "esm2_t6_8M_UR50D-balanced-abc123"
    cache.mkdir(parents=True)
    np.save(cache / "shard-00000.npy", np.arange(12, dtype=np.float16).reshape(3, 4))
    (cache / "manifest.json").write_text('{"model_label": "esm2_t6_8M_UR50D", "dim": 4}')
    return cache.parent


def test_add_push_delete_pull_round_trip(repo, tmp_path):
    data, embeddings = kaggle_folder(repo), embedding_folder(repo)
    before = {"data": digests(data), "emb": digests(embeddings)}
    remote = tmp_path / "dvc-remote"
    run(repo, "dvc", "add", "data/cafa6", "embeddings")
    run(repo, "dvc", "remote", "add", "-d", "local", str(remote))
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "data and embeddings under DVC")
    assert "data/cafa6.dvc" in run(repo, "git", "ls-files") and "/cafa6" in (repo / "data" / ".gitignore").read_text()
    run(repo, "dvc", "push")
    assert any(p.is_file() for p in remote.rglob("*"))
    shutil.rmtree(data)
    shutil.rmtree(embeddings)
    shutil.rmtree(repo / ".dvc" / "cache")  # a fresh clone has no cache either
    run(repo, "dvc", "pull")
    assert {"data": digests(data), "emb": digests(embeddings)} == before
    assert "are in sync" in run(repo, "dvc", "status", "-c")


EMBED = """import pathlib, yaml
key = yaml.safe_load(open("params.yaml"))["embed"]["model"]
shard = pathlib.Path("cache") / f"{key}.npy"
print("hit" if shard.exists() else "computed", key)
shard.parent.mkdir(exist_ok=True)
shard.write_text(key)
"""


@pytest.mark.parametrize(("cache", "kept"), [(True, False), (False, True)])
def test_exp_run_keeps_a_persistent_cache_only_when_dvc_does_not_cache_it(repo, cache, kept):
    """The chain run outside DVC first (`make main`) leaves a cache dvc.lock knows nothing about: with
    cache: true `dvc exp run` warns "No file hash info found ... It won't be created" and deletes it."""
    (repo / "embed.py").write_text(EMBED)
    (repo / "params.yaml").write_text("embed:\n  model: a   # the encoder\n")
    (repo / "dvc.yaml").write_text(
        f"stages:\n  embed:\n    cmd: python embed.py\n    deps: [embed.py]\n    params: [embed]\n"
        f"    outs:\n      - cache:\n          persist: true\n          cache: {str(cache).lower()}\n"
    )
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "stage")
    run(repo, sys.executable, "embed.py")  # the cache exists, made outside DVC
    out = run(repo, "dvc", "exp", "run", "-S", "embed.model=a")
    assert ("hit a" in out) is kept
    assert ("No file hash info found" in out) is (not kept)
    out = run(repo, "dvc", "exp", "run", "-S", "embed.model=b")
    assert "computed b" in out and sorted(p.name for p in (repo / "cache").iterdir()) == ["a.npy", "b.npy"]


def test_exp_run_set_param_rewrites_layout_but_keeps_comments_and_values(repo):
    import yaml

    params = (
        "# defaults\ntrain:\n  loss: bce        # bce | focal\n  top_k: null     # no cap\n"
        "ensemble:\n  members: [naive, knn]   # folders\n"
    )
    (repo / "params.yaml").write_text(params)
    (repo / "dvc.yaml").write_text("stages:\n  s:\n    cmd: python -c 'print(1)'\n    params: [train, ensemble]\n")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "params")
    run(repo, "dvc", "exp", "run", "-S", "train.loss=focal")
    text = (repo / "params.yaml").read_text()
    assert yaml.safe_load(text) == {
        "train": {"loss": "focal", "top_k": None},
        "ensemble": {"members": ["naive", "knn"]},
    }
    assert "# defaults" in text and "# bce | focal" in text and "# folders" in text  # comments kept
    assert "top_k: null" not in text and "- naive" in text  # null written empty, flow list made a block list
    run(repo, "git", "commit", "-qam", "rewritten once")
    run(repo, "dvc", "exp", "run", "-S", "train.loss=bce")
    diff = run(repo, "git", "diff", "-U0", "params.yaml")
    assert [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-  loss: focal      # bce | focal",
        "+  loss: bce        # bce | focal",
    ]
