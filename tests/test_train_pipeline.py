"""`cafa train` end to end on a tiny prepared world with a temporary sqlite tracking store."""

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from cafa_mlflow.go.labels import load_term_matrix
from pipelines import cli

REGISTERED = "cafa-go-test"


def _artifacts(client, run_id, path=""):
    out = []
    for item in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return out


def test_cafa_train_logs_saves_registers_and_promotes_only_a_better_run(world):
    root, overrides = world
    assert cli.main(["train", "--params-file", str(overrides), "--loss", "focal", "--max-epochs", "2"]) == 0
    client = MlflowClient()
    (run,) = client.search_runs(client.get_experiment_by_name("cafa-mlflow").experiment_id)
    params, metrics = run.data.params, run.data.metrics
    assert run.data.tags["entry_point"] == "train"
    assert {
        "esm_model",
        "strategy",
        "model",
        "loss",
        "lr",
        "batch_size",
        "epochs",
        "max_epochs",
        "scheduler",
        "focal_gamma",
        "train_seed",
        "seed",
        "split",  # the validation scheme, under the -P names that set it
        "split_min_identity",
        "folds.k",
        "folds.full_fit",
    } <= set(params)
    assert (params["loss"], params["epochs"], params["model"]) == ("focal", "2", "multitask")
    # per-epoch curves at step = epoch; the final (best-restored) values one step later
    for name in ("train_loss", "val_loss", "lr"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [1, 2]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_f_w_mean")] == [1, 2, 3]
    final = {f"val_f_w_{a}" for a in ("BPO", "CCO", "MFO", "mean")} | {f"val_f_{a}" for a in ("BPO", "CCO", "MFO")}
    final |= {f"val_{k}_f1_{a}" for k in ("micro", "macro") for a in ("BPO", "CCO", "MFO")}
    final |= {"test_f_w_mean", "test_f_w_BPO", "val_naive_f_w_mean", "best_epoch", "epochs_run"}
    assert final <= set(metrics)
    assert metrics["val_f_w_mean"] > metrics["val_naive_f_w_mean"]  # the classes are learnable
    assert 0.0 <= metrics["test_f_w_mean"] <= 1.0
    arts = set(_artifacts(client, run.info.run_id))
    assert {
        "plots/pr_BPO.png",
        "plots/pr_CCO.png",
        "plots/pr_MFO.png",
        "plots/loss.png",
        "vocabulary/terms.tsv",
        "thresholds/thresholds.tsv",
    } <= arts
    # predictions and the fitted predictor on disk
    out = root / "predictions" / "neural"
    val = load_term_matrix(out / "val.npz")
    test = load_term_matrix(out / "test.npz")
    assert val.shape[1] == test.shape[1] == len(pd.read_csv(root / "prepared" / "terms.tsv", sep="\t"))
    assert len(test.proteins) == 24 and (out / "model" / "config.json").is_file()
    # registered (MLflow 3 keeps the pyfunc as a logged model of the run), champion, servable
    (version,) = client.search_model_versions(f"name='{REGISTERED}'")
    assert str(client.get_model_version_by_alias(REGISTERED, "champion").version) == str(version.version) == "1"
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"models:/{REGISTERED}@champion")
    example = pd.DataFrame({"protein": ["X"], "embedding": [np.zeros(16, dtype=np.float32)]})
    scored = model.predict(example)
    assert list(scored.columns) == ["protein", "term", "score"] and len(scored) > 0

    # a worse run (almost no learning) registers version 2 but does not take the alias
    assert (
        cli.main(
            [
                "train",
                "--params-file",
                str(overrides),
                "--max-epochs",
                "1",
                "--lr",
                "1e-6",
                "--hidden-dim",
                "2",
                "--loss",
                "bce",
            ]
        )
        == 0
    )
    runs = client.search_runs(run.info.experiment_id, order_by=["attributes.start_time DESC"])
    worse = runs[0].data.metrics["val_f_w_mean"]
    assert worse < metrics["val_f_w_mean"]
    assert len(client.search_model_versions(f"name='{REGISTERED}'")) == 2
    assert str(client.get_model_version_by_alias(REGISTERED, "champion").version) == "1"
    assert client.get_model_version(REGISTERED, "2").tags["promoted"] == "false"
