"""The `tune` workflow: an Optuna study over `train`'s hyperparameters, or over the ensemble's (method,
stacker block) fitted on the saved members (tune.objective; search space: params.yaml tune.space).

One MLflow parent run per invocation, one nested child run per trial logged exactly like a `train` run; the
parent gets the best value and params, the trials table and Optuna's plots. Resumes by study name; many
workers (any machines) can share one study through tune.storage and stop at exactly tune.n_trials."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import optuna
from mlflow.tracking import MlflowClient

from cafa_mlflow.errors import CafaError, ConfigError, OutputError
from cafa_mlflow.io import outputs
from cafa_mlflow.io.readback import read_yaml
from cafa_mlflow.io.text import check_writable
from cafa_mlflow.tracking import runs
from cafa_mlflow.workflows import optuna_study
from cafa_mlflow.workflows.ensemble import fit_ensemble
from cafa_mlflow.workflows.train import run_params, train_neural

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params

MAX_TAG_CHARS = 5000


class Objective:
    """Trains one trial inside a nested MLflow run; pruned -> TrialPruned, errors -> FAIL with the reason.
    A CafaError (the user's input or configuration is wrong for every trial) also stops the study."""

    def __init__(self, params: Params) -> None:
        self.params, self.tune = params, params.tune
        self.fatal: CafaError | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        from cafa_mlflow.predictors.neural import PruningCallback, TrainingPruned

        tune, metric = self.tune, self.tune.metric
        trial.study.sampler = optuna_study.make_sampler(tune.sampler_seed, tune.startup_trials, trial.number)
        overrides = optuna_study.suggest(trial, tune.space)
        scratch = Path(tune.out) / "trials"
        scratch.mkdir(parents=True, exist_ok=True)
        out_dir = Path(tempfile.mkdtemp(prefix=f"trial-{trial.number}-", dir=scratch))
        outputs.write_marker(out_dir)  # the trial's scratch folder: ours to delete
        pruned: TrainingPruned | None = None
        try:
            params = self.params.with_overrides({**self._scratch(out_dir), **overrides})
            tags = {"optuna_study": trial.study.study_name, "optuna_trial": str(trial.number)}
            with runs.start_run(
                params, "tune_trial", run_name=f"trial-{trial.number}", nested=True, tags=tags
            ) as child:
                trial.set_user_attr("mlflow_run_id", child.info.run_id)
                prune = PruningCallback(trial.report, trial.should_prune, metric)
                try:
                    metrics = self._run(params, prune, out_dir)
                except TrainingPruned as err:
                    pruned = err
                    mlflow.set_tags({"optuna_state": "PRUNED", "pruned_epoch": str(err.epoch)})
                except Exception as err:
                    self._record_failure(trial, err)
                    raise  # the child run ends FAILED; optimize(catch=...) records the trial FAIL
                else:
                    problem = self._check(metrics, metric)
                    if problem is not None:
                        self._record_failure(trial, problem)
                        raise problem
                    mlflow.set_tags({"optuna_state": "COMPLETE"})
        finally:
            with contextlib.suppress(OSError, OutputError):
                outputs.remove_tree(out_dir)
        if pruned is not None:
            MlflowClient().set_terminated(child.info.run_id, "KILLED")
            raise optuna.TrialPruned(str(pruned))
        return float(metrics[metric])

    def _scratch(self, out_dir: Path) -> dict[str, Any]:
        """Where a trial writes: a scratch folder, never outputs.predictions (an ensemble trial reads the
        members there). A train trial is scored on validation only: no cross-fitting or whole-pool refit
        (retrain_best does them)."""
        if self.tune.objective == "ensemble":
            return {"outputs.metrics": str(out_dir)}
        return {"folds.k": 0, "folds.full_fit": False, "outputs.predictions": str(out_dir)}

    def _run(self, params: Params, prune: Any, out_dir: Path) -> dict[str, float]:
        if self.tune.objective == "ensemble":  # the saved members, combined with the trial's ensemble/stacker keys
            return fit_ensemble(params, register=False, out=out_dir / "ensemble")
        runs.log_params(run_params(params))
        return train_neural(params, epoch_callbacks=[prune], register=False)

    @staticmethod
    def _check(metrics: dict, metric: str) -> Exception | None:
        if metric not in metrics:
            return ConfigError(
                f"params.yaml tune.metric={metric!r} is not among train's metrics {sorted(metrics)}; pick one of them"
            )
        if metrics[metric] != metrics[metric]:
            return FloatingPointError(f"{metric} is NaN (diverged training?)")
        return None

    def _record_failure(self, trial: optuna.Trial, err: Exception) -> None:
        reason = f"{type(err).__name__}: {err}"[:MAX_TAG_CHARS]
        trial.set_user_attr("fail_reason", reason)
        mlflow.set_tags({"optuna_state": "FAIL", "fail_reason": reason})
        if isinstance(err, CafaError) and self.fatal is None:
            self.fatal = err


def log_results(study: optuna.Study, params: Params) -> dict[str, Any]:
    """Best value/params, state counts, trials table and plots on the active (parent) run;
    best_params.yaml in tune.out. Returns a summary."""
    tune, metric = params.tune, params.tune.metric
    summary: dict[str, Any] = {**optuna_study.state_counts(study), "n_trials": len(study.get_trials(deepcopy=False))}
    runs.log_metrics(summary)
    best = optuna_study.best_trial(study)
    out = Path(tune.out)
    if best is not None:
        path = optuna_study.write_best_params(out / "best_params.yaml", best, study.study_name, metric)
        summary.update(
            {
                "best_value": best.value,
                "best_trial": best.number,
                "best_params": dict(best.params),
                "best_params_file": str(path),
            }
        )
        runs.log_metrics({f"best_{metric}": best.value, "best_trial": best.number})
        runs.log_params({f"best.{k}": v for k, v in best.params.items()})
        mlflow.set_tag("best_run_id", best.user_attrs.get("mlflow_run_id", ""))
        runs.log_artifacts([path])
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "trials.csv"
        study.trials_dataframe().to_csv(table, index=False)
        plots = optuna_study.plot_study(study, Path(tmp) / "plots", target_name=metric)
        runs.log_artifacts([table])
        runs.log_artifacts(plots, "plots")
    return summary


def retrain_best(params: Params, best_params_file: str | Path) -> dict[str, float]:
    """A `train` (or `ensemble`, per tune.objective) run nested under the tune run with params + the best
    params file; registers the model."""
    best = params.with_overrides(read_yaml(best_params_file, "run `cafa tune` again (it writes the file)") or {})
    step = params.tune.objective
    with runs.start_run(
        best, step, run_name="retrain-best", nested=True, tags={"optuna_study": params.tune.study_name}
    ):
        return fit_ensemble(best, register=True) if step == "ensemble" else train_neural(best, register=True)


def run_study(params: Params) -> dict[str, Any]:
    """Join (or create) the study, run this worker's trials, log the results; returns a summary."""
    tune = params.tune
    check_writable(tune.out, folder=True)
    optuna_study.validate_space(tune.space, params.to_dict())
    name, url = tune.study_name, tune.storage
    with optuna_study.study_lock(url, name):  # workers starting together would race to create the tables
        storage = optuna_study.make_storage(url, tune.heartbeat_interval)
        study = optuna_study.open_study(
            name,
            storage,
            tune.direction,
            optuna_study.make_pruner(tune.to_dict()),
            optuna_study.make_sampler(tune.sampler_seed, tune.startup_trials),
        )
    # flag names (MLflow param foo_bar == --foo-bar); the storage URL without its password
    settings = {("tune_out" if k == "out" else k): v for k, v in tune.to_dict().items() if k != "space"}
    settings["storage"] = optuna_study.safe_url(url)
    objective = Objective(params)
    with runs.start_run(params, "tune", run_name=f"tune-{name}", extra_params=settings, tags={"optuna_study": name}):
        mlflow.log_dict(tune.space, "space.yaml")
        ran = optuna_study.run_worker(
            study,
            objective,
            tune.n_trials,
            lambda: optuna_study.study_lock(url, name),
            timeout=tune.timeout,
            stop=lambda: objective.fatal is not None,
        )
        runs.log_metrics({"trials_this_worker": ran})
        if objective.fatal is not None:
            raise objective.fatal
        summary = {**log_results(study, params), "trials_this_worker": ran}
        if tune.retrain_best:
            if "best_params_file" not in summary:
                raise ConfigError(f"study {name!r} has no complete trial to retrain; run more trials first.")
            summary["retrain_metrics"] = retrain_best(params, summary["best_params_file"])
    return summary
