"""dvc.yaml and the Makefile's offline route agree with the code: one small metrics file, the plot files the
report writes, an embedding cache that survives experiments, `make repro ESM=tiny` with no download."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cafa_mlflow.config.loading import load_params
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
    plots = {name: spec for entry in PIPELINE["plots"] for name, spec in entry.items()}
    pr_dir = Path(params["evaluate"]["out_json"]).parent / PLOTS_DIR
    assert plots["precision_recall"]["y"] == {str(pr_dir / f"pr_{a}.csv"): "precision" for a in ASPECTS}
    history = str(Path(params["outputs"]["predictions"]) / "neural" / "history.csv")
    assert plots["training_loss"]["y"] == {history: ["train_loss", "val_loss"]}
    assert plots["training_validation"]["y"] == {history: "val_f_w_mean"}
    evaluate_outs = [next(iter(o)) if isinstance(o, dict) else o for o in PIPELINE["stages"]["evaluate"]["outs"]]
    assert str(pr_dir) in evaluate_outs


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
