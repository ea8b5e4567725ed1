"""dvc.yaml and the Makefile's offline route agree with the code: one small metrics file, the plot files the
report writes, an embedding cache that survives experiments, `make repro ESM=tiny` with no download."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cafa_mlflow.config.params_file import load_params
from cafa_mlflow.evaluation.reports import HEADLINE_FILE, PLOTS_DIR
from cafa_mlflow.go.ontology import ASPECTS

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def test_one_small_metrics_file():
    metrics = [next(iter(m)) for stage in PIPELINE["stages"].values() for m in stage.get("metrics", [])]
    out_json = Path(load_params()["evaluate"]["out_json"])
    assert metrics == [str(out_json.parent / HEADLINE_FILE)]


def test_plots_read_the_files_the_code_writes():
    params = load_params()
    plots = [p if isinstance(p, str) else next(iter(p)) for p in PIPELINE["plots"]]
    pr_dir = Path(params["evaluate"]["out_json"]).parent / PLOTS_DIR
    history = Path(params["outputs"]["predictions"]) / "neural" / "history.png"
    assert plots == [str(pr_dir / "precision_recall.png"), str(history)]
    evaluate_outs = [next(iter(o)) if isinstance(o, dict) else o for o in PIPELINE["stages"]["evaluate"]["outs"]]
    assert str(pr_dir) in evaluate_outs


@pytest.mark.skipif(shutil.which("dvc") is None and not (Path(sys.executable).parent / "dvc").exists(), reason="no dvc")
def test_dvc_plots_show_renders_offline(tmp_path):
    """`dvc plots show` on the project's plots (drawn by the code from small curves): a page with the images and
    no script from the network, so it renders offline."""
    from cafa_mlflow.evaluation.reports import write_history, write_pr_png

    params = load_params()
    pr_dir = tmp_path / Path(params["evaluate"]["out_json"]).parent / PLOTS_DIR
    curve = pd.DataFrame(
        {"recall": [0.1, 0.5], "precision": [0.9, 0.4], "recall_w": [0.1, 0.4], "precision_w": [0.8, 0.3]}
    )
    write_pr_png({a: curve for a in ASPECTS}, pr_dir / "precision_recall.png")
    history = [
        {"train_loss": 0.9, "val_loss": 0.8, "val_f_w_mean": 0.1},
        {"train_loss": 0.5, "val_loss": 0.6, "val_f_w_mean": 0.3},
    ]
    write_history(history, tmp_path / Path(params["outputs"]["predictions"]) / "neural" / "history.csv")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"plots": PIPELINE["plots"]}))
    dvc = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True, env=env)
    done = subprocess.run([dvc, "plots", "show", "-o", "page"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "page" / "index.html").read_text()
    assert page.count("<img") == 2, page
    assert not re.search(r"<script[^>]+src=", page) and "http" not in page.replace("http-equiv", ""), page


def test_embedding_cache_is_persistent_and_not_dvc_cached():
    (out,) = PIPELINE["stages"]["embed"]["outs"]
    assert out == {load_params()["embed"]["out"]: {"persist": True, "cache": False}}


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_repro_tiny_makes_the_checkpoint_then_sets_the_encoder():
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "install", "repro", "ESM=tiny"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert dry[0].startswith("[ -f outputs/esm2_tiny.pt ] ||") and dry[0].endswith(
        "cafa make-tiny-esm --out outputs/esm2_tiny.pt"
    )
    assert dry[1].endswith("dvc exp run -S embed.esm_model=outputs/esm2_tiny.pt")
    plain = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "install", "repro"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert plain.strip().endswith("dvc repro") and "tiny" not in plain
    ui = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "install", "ui"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert "mlflow ui --backend-store-uri" in ui and "--host 127.0.0.1" in ui
