"""`tune`: nested MLflow runs, pruned/complete/failed trials, resume by name, two workers on one SQLite study,
the best-params file, and one study with the real `train` on the tiny world."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.config.params_file import load_params
from cafa_mlflow.config.schema import Params
from cafa_mlflow.errors import ConfigError
from cafa_mlflow.tracking import runs
from cafa_mlflow.workflows import optuna_study
from cafa_mlflow.workflows import tune as tune_workflow

REPO = Path(__file__).resolve().parents[1]
SPACE = {
    "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "train.loss": {"type": "categorical", "choices": ["bce", "focal"]},
    "train.focal_gamma": {"type": "float", "low": 0.5, "high": 5.0, "when": {"train.loss": "focal"}},
    "train.hidden_dim": {"type": "int", "low": 16, "high": 64, "step": 16},
}


class FakeTrain:
    """Stands in for workflows.train.train_neural: call k reports script[k] at every epoch (and returns it);
    "raise" raises like an out-of-memory, "config" raises a user (Cafa) error."""

    def __init__(self, script, epochs: int = 3, sleep: float = 0.0) -> None:
        self.script, self.epochs, self.sleep, self.calls = list(script), epochs, sleep, []

    def __call__(self, params, epoch_callbacks=(), register=True):
        self.calls.append((params, register))
        value = self.script[(len(self.calls) - 1) % len(self.script)]
        if value == "raise":
            raise RuntimeError("CUDA out of memory (fake)")
        if value == "config":
            raise ConfigError("prepare.out: no prepared data (fake); run `cafa prepare` first")
        for epoch in range(1, self.epochs + 1):
            time.sleep(self.sleep)
            metrics = {"val_f_w_mean": value, "train_loss": 1.0 / epoch}
            runs.log_metrics(metrics, step=epoch)
            for cb in epoch_callbacks:
                cb(epoch, dict(metrics))
        return {"val_f_w_mean": value, "best_epoch": self.epochs}


@pytest.fixture(scope="module")
def mlflow_template(tmp_path_factory):
    """One migrated MLflow SQLite store; tests copy it (creating a store takes seconds)."""
    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def env(tmp_path, monkeypatch, mlflow_template):
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    # mlflow.set_experiment exports MLFLOW_EXPERIMENT_ID, which tracking.configure then trusts: drop it
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.chdir(tmp_path)  # artifacts (./mlruns) stay in the temp folder
    return tmp_path


def make_params(root: Path, **tune) -> Params:
    params = load_params(REPO / "params.yaml")
    params["tracking"]["system_metrics"] = False
    params["tune"].update(
        {
            "storage": f"sqlite:///{root}/optuna.db",
            "out": str(root / "tune"),
            "n_trials": 3,
            "study_name": "t",
            "pruner": "median",
            "median_startup_trials": 1,
            "median_warmup_steps": 0,
            "space": SPACE,
            "heartbeat_interval": None,
            **tune,
        }
    )
    return Params.from_dict(params)


def study_runs(study_name: str = "t"):
    client = MlflowClient()
    exp = client.get_experiment_by_name("cafa-mlflow")
    found = client.search_runs(exp.experiment_id, f"tags.optuna_study = '{study_name}'", order_by=["start_time ASC"])
    parents = [r for r in found if r.data.tags["entry_point"] == "tune"]
    children = [r for r in found if r.data.tags["entry_point"] == "tune_trial"]
    return client, parents, sorted(children, key=lambda r: int(r.data.tags["optuna_trial"]))


def load(root: Path, name: str = "t") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root}/optuna.db")


def test_three_trials_nested_runs_pruned_and_complete(env, monkeypatch):
    fake = FakeTrain([1.0, 0.0, 2.0])  # trial 1 is below the median of trial 0 at epoch 1 -> pruned
    monkeypatch.setattr("cafa_mlflow.workflows.tune.train_neural", fake)
    summary = tune_workflow.run_study(make_params(env))

    study = load(env)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    assert study.trials[1].last_step == 1 and study.best_trial.number == 2 and study.best_value == 2.0
    assert [register for _, register in fake.calls] == [False] * 3
    assert all(p.outputs.predictions.startswith(str(env / "tune" / "trials")) for p, _ in fake.calls)
    assert not any((env / "tune" / "trials").iterdir())  # scratch folders removed
    assert summary["n_complete"] == 2 and summary["n_pruned"] == 1 and summary["trials_this_worker"] == 3

    client, (parent,), children = study_runs()
    assert [c.data.tags["mlflow.parentRunId"] for c in children] == [parent.info.run_id] * 3
    assert [c.info.status for c in children] == ["FINISHED", "KILLED", "FINISHED"]
    assert [c.data.tags["optuna_state"] for c in children] == ["COMPLETE", "PRUNED", "COMPLETE"]
    for child, trial in zip(children, study.trials):  # train's param names, the sampled values
        assert trial.user_attrs["mlflow_run_id"] == child.info.run_id
        assert float(child.data.params["lr"]) == pytest.approx(trial.params["train.lr"])
        assert child.data.params["loss"] == trial.params["train.loss"]
        assert int(child.data.params["hidden_dim"]) == trial.params["train.hidden_dim"]
    steps = [m.step for m in client.get_metric_history(children[0].info.run_id, "val_f_w_mean")]
    assert steps == [1, 2, 3]
    assert parent.data.metrics["best_val_f_w_mean"] == 2.0 and parent.data.metrics["n_pruned"] == 1
    assert float(parent.data.params["best.train.lr"]) == pytest.approx(study.best_params["train.lr"])
    assert parent.data.tags["best_run_id"] == children[2].info.run_id
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    arts |= {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {
        "best_params.yaml",
        "trials.csv",
        "space.yaml",
        "plots/optimization_history.png",
        "plots/param_importances.png",
        "plots/parallel_coordinate.png",
    } <= arts

    best_file = env / "tune" / "best_params.yaml"
    assert yaml.safe_load(best_file.read_text()) == study.best_params
    # the file is what `cafa train --params-file` takes
    params, _ = parse_params(["--params-file", str(best_file)], "cafa train", "", own="train")
    assert params.train.lr == pytest.approx(study.best_params["train.lr"])
    assert params.train.hidden_dim == study.best_params["train.hidden_dim"]


def test_failed_trial_keeps_its_reason_and_the_study_continues_then_resumes(env, monkeypatch):
    monkeypatch.setattr("cafa_mlflow.workflows.tune.train_neural", FakeTrain([1.0, "raise", 0.5, 0.7]))
    monkeypatch.setattr(optuna_study, "plot_study", lambda *args, **kwargs: [])
    params = make_params(env, pruner="none", n_trials=3)
    tune_workflow.run_study(params)
    study = load(env)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["fail_reason"] == "RuntimeError: CUDA out of memory (fake)"
    _, _, children = study_runs()
    assert children[1].info.status == "FAILED"
    assert children[1].data.tags["fail_reason"] == "RuntimeError: CUDA out of memory (fake)"

    # same study name, larger budget: the study is resumed and grows to 4 trials under a new parent run
    params = params.with_overrides({"tune.n_trials": 4})
    again = tune_workflow.run_study(params)
    assert optuna.get_all_study_names(f"sqlite:///{env}/optuna.db") == ["t"]
    study = load(env)
    assert len(study.trials) == 4 and study.trials[3].state == TrialState.COMPLETE
    assert again["trials_this_worker"] == 1 and again["n_fail"] == 1
    _, parents, children = study_runs()
    assert len(parents) == 2 and len(children) == 4
    assert children[3].data.tags["mlflow.parentRunId"] == parents[1].info.run_id
    assert tune_workflow.run_study(params)["trials_this_worker"] == 0  # budget reached: nothing more


def test_user_error_stops_the_study_with_its_message(env, monkeypatch):
    monkeypatch.setattr("cafa_mlflow.workflows.tune.train_neural", FakeTrain(["config"]))
    monkeypatch.setattr(optuna_study, "plot_study", lambda *args, **kwargs: [])
    with pytest.raises(ConfigError, match="cafa prepare"):
        tune_workflow.run_study(make_params(env))
    (trial,) = load(env).trials
    assert trial.state == TrialState.FAIL and "no prepared data" in trial.user_attrs["fail_reason"]


WORKER = """
import json, sys, types
sys.path.insert(0, {tests!r})
fake = {{}}
stub = types.ModuleType("cafa_mlflow.workflows.train")  # the real module's imports cost seconds per worker
stub.train_neural = lambda *args, **kwargs: fake["train"](*args, **kwargs)
stub.run_params = lambda params: {{"lr": params.train.lr}}
sys.modules["cafa_mlflow.workflows.train"] = stub
from cafa_mlflow.workflows import optuna_study
from cafa_mlflow.workflows import tune
from test_tune import FakeTrain, make_params
from pathlib import Path
fake["train"] = FakeTrain([0.3, 0.6, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8], epochs=2, sleep=0.05)
optuna_study.plot_study = lambda *args, **kwargs: []  # plots are checked in-process
summary = tune.run_study(make_params(Path({root!r}), n_trials={n}, pruner="none"))
print("RESULT", json.dumps({{"ran": summary["trials_this_worker"]}}))
"""


@pytest.mark.slow
def test_two_workers_on_one_sqlite_study_finish_exactly_n_trials(tmp_path, mlflow_template):
    n = 6
    procs = []
    for i in range(2):  # each worker logs to its own MLflow store; the Optuna study is shared
        shutil.copy(mlflow_template, tmp_path / f"mlflow{i}.db")
        environ = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")}
        environ = {**environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow{i}.db", "PYTHONPATH": str(REPO)}
        code = WORKER.format(tests=str(REPO / "tests"), root=str(tmp_path), n=n)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=tmp_path,
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    ran = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        ran.append(json.loads(out.split("RESULT", 1)[1])["ran"])
    study = load(tmp_path)
    assert sum(ran) == n
    assert sorted(t.number for t in study.trials) == list(range(n))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_space_errors_name_the_key():
    params = load_params(REPO / "params.yaml")
    optuna_study.validate_space(params["tune"]["space"], params)  # the shipped space is valid
    with pytest.raises(ConfigError, match="tune.space.train.nope"):
        optuna_study.validate_space({"train.nope": {"type": "float", "low": 0, "high": 1}}, params)
    with pytest.raises(ConfigError, match="low` < `high"):
        optuna_study.validate_space({"train.lr": {"type": "float", "low": 1, "high": 1}}, params)
    with pytest.raises(ConfigError, match="median, hyperband or none"):
        optuna_study.make_pruner({**params["tune"], "pruner": "asha"})
    assert isinstance(
        optuna_study.make_pruner({**params["tune"], "pruner": "hyperband"}), optuna.pruners.HyperbandPruner
    )


@pytest.mark.slow
def test_real_train_two_trials_then_retrain_best_registers(env):
    from train_fixtures import make_world

    from pipelines import cli

    overrides = make_world(env / "world")
    argv = [
        "tune",
        "--params-file",
        str(overrides),
        "--n-trials",
        "2",
        "--train-max-epochs",
        "2",
        "--pruner",
        "none",
        "--storage",
        f"sqlite:///{env}/optuna.db",
        "--tune-out",
        str(env / "tune"),
        "--study-name",
        "t",
        "--retrain-best",
        "true",
    ]
    assert cli.main(argv) == 0
    study = load(env)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    client, (parent,), children = study_runs()
    for child, trial in zip(children, study.trials):
        assert child.info.status == "FINISHED"
        assert child.data.metrics["val_f_w_mean"] == pytest.approx(trial.value)
        assert child.data.params["loss"] == trial.params["train.loss"]
        assert {"lr", "batch_size", "epochs", "test_f_w_mean"} <= set(child.data.params) | set(child.data.metrics)
        assert "registered_version" not in child.data.tags  # trials never register
    (retrain,) = [r for r in client.search_runs(parent.info.experiment_id, "tags.entry_point = 'train'")]
    assert retrain.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert retrain.data.params["loss"] == study.best_params["train.loss"]
    assert float(retrain.data.params["lr"]) == pytest.approx(study.best_params["train.lr"])
    assert retrain.data.tags["registered_version"] == "1"
    assert (env / "world" / "predictions" / "neural" / "model").is_dir()


def test_ensemble_objective_tunes_the_method_on_saved_members_and_retrains_the_best(env):
    """tune.objective=ensemble: trials fit blend or stacker on the members' out-of-fold predictions (scored on
    the unseen validation split), never touch outputs.predictions/ensemble; retrain_best registers the best."""
    import yaml
    from train_fixtures import make_world

    from pipelines import cli

    overrides = make_world(env / "world")
    extra = yaml.safe_load(overrides.read_text())
    extra["ensemble"] = {"members": ["naive", "knn"]}
    extra["folds"] = {"k": 3, "oof_proteins": 0}
    extra["knn"] = {"k": 3}
    extra["stacker"] = {"max_iter": 10, "min_samples_leaf": 2}
    extra["tune"] = {
        "objective": "ensemble",
        "space": {"ensemble.method": {"type": "categorical", "choices": ["blend", "stacker"]}},
        "storage": f"sqlite:///{env}/optuna.db",
        "out": str(env / "tune"),
        "study_name": "ens",
        "n_trials": 3,
        "pruner": "none",
        "retrain_best": True,
    }
    overrides.write_text(yaml.safe_dump(extra))
    for kind in ("naive", "knn"):
        assert cli.main(["member", "--predictor", kind, "--params-file", str(overrides)]) == 0
    assert cli.main(["tune", "--params-file", str(overrides)]) == 0
    study = load(env, "ens")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert {t.params["ensemble.method"] for t in study.trials} == {"blend", "stacker"}
    client, (parent,), children = study_runs("ens")
    assert [c.data.metrics["val_f_w_mean"] for c in children] == pytest.approx([t.value for t in study.trials])
    for child, trial in zip(children, study.trials):  # each trial logs its method's own parameters
        assert child.data.params["method"] == trial.params["ensemble.method"]
        stacked = trial.params["ensemble.method"] == "stacker"
        assert ("stacker.max_iter" in child.data.params) == stacked
        assert any(k.startswith("weight_") for k in child.data.params) != stacked
    (retrain,) = client.search_runs(parent.info.experiment_id, "tags.entry_point = 'ensemble'")
    assert retrain.data.params["method"] == study.best_params["ensemble.method"]
    kind = {"blend": "ensemble", "stacker": "stacked"}[study.best_params["ensemble.method"]]
    assert (
        json.loads((env / "world" / "predictions" / "ensemble" / "model" / "predictor.json").read_text())["kind"]
        == kind
    )
