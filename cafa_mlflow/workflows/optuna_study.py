"""Optuna building blocks for `tune`: the search space as data, sampler/pruner/storage from params.yaml's
`tune` block, a worker loop that stops the study at exactly `n_trials` trials however many workers share
it, the best-params file `train --params-file` accepts, and Optuna's matplotlib plots. No MLflow here.

Exactly N across workers: before each trial a worker takes a study-wide lock (a file lock next to a SQLite
file, an advisory lock on PostgreSQL / MySQL), counts the study's trials and, if fewer than N, enqueues an
empty WAITING "ticket" trial. `study.optimize(n_trials=1)` then pops a ticket (Optuna's atomic
WAITING -> RUNNING switch) and samples its parameters, so the study never holds more than N trials.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from cafa_mlflow.config.params_file import flatten
from cafa_mlflow.errors import ConfigError
from cafa_mlflow.io.locks import file_lock
from cafa_mlflow.io.text import atomic_write

log = logging.getLogger(__name__)
KINDS = ("float", "int", "categorical")


# --- search space ---------------------------------------------------------------------------------


def validate_space(space: Mapping[str, Mapping], params: Mapping) -> None:
    """Raise ConfigError naming `tune.space.<key>` for unknown keys, types or bounds."""
    if not space:
        raise ConfigError("params.yaml tune.space is empty; add at least one dotted key, e.g. train.lr.")
    known = flatten(params)
    for key, spec in space.items():
        where = f"params.yaml tune.space.{key}"
        if key not in known:
            raise ConfigError(f"{where}: {key!r} is not a params.yaml key; use a dotted name such as train.lr.")
        if not isinstance(spec, Mapping) or spec.get("type") not in KINDS:
            raise ConfigError(f"{where}: give `type: float | int | categorical`.")
        if spec["type"] == "categorical":
            if not spec.get("choices"):
                raise ConfigError(f"{where}: a categorical needs a non-empty `choices` list.")
        elif "low" not in spec or "high" not in spec or not spec["low"] < spec["high"]:
            raise ConfigError(f"{where}: a {spec['type']} needs numbers `low` < `high`.")
        for cond in spec.get("when") or {}:
            if cond not in space:
                raise ConfigError(f"{where}: `when` refers to {cond!r}, which is not in tune.space.")


def suggest(trial: optuna.Trial, space: Mapping[str, Mapping]) -> dict[str, Any]:
    """Sample every key of `space` (in order) -> {dotted key: value}. A key with `when: {key: value}`
    is sampled only when the keys sampled before it hold those values (e.g. focal_gamma iff loss=focal)."""
    chosen: dict[str, Any] = {}
    for key, spec in space.items():
        if any(chosen.get(k) != v for k, v in (spec.get("when") or {}).items()):
            continue
        kind = spec["type"]
        if kind == "categorical":
            chosen[key] = trial.suggest_categorical(key, list(spec["choices"]))
        elif kind == "int":
            chosen[key] = trial.suggest_int(
                key,
                int(spec["low"]),
                int(spec["high"]),
                step=int(spec.get("step", 1)),
                log=bool(spec.get("log", False)),
            )
        else:
            chosen[key] = trial.suggest_float(
                key, float(spec["low"]), float(spec["high"]), step=spec.get("step"), log=bool(spec.get("log", False))
            )
    return chosen


# --- sampler, pruner, storage, study ----------------------------------------------------------------


def make_sampler(seed: int | None, startup_trials: int, trial_number: int = 0) -> optuna.samplers.BaseSampler:
    """TPE seeded with seed + trial_number (None = unseeded): reproducible, and distinct across workers."""
    return optuna.samplers.TPESampler(
        seed=None if seed is None else int(seed) + trial_number, n_startup_trials=int(startup_trials)
    )


def make_pruner(tune: Mapping) -> optuna.pruners.BasePruner:
    kind = str(tune["pruner"]).lower()
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(tune["median_startup_trials"]), n_warmup_steps=int(tune["median_warmup_steps"])
        )
    if kind == "hyperband":
        top = tune["hyperband_max_resource"]
        return optuna.pruners.HyperbandPruner(
            min_resource=int(tune["hyperband_min_resource"]),
            max_resource=top if top == "auto" else int(top),
            reduction_factor=int(tune["hyperband_reduction_factor"]),
        )
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"params.yaml tune.pruner={kind!r}: use median, hyperband or none.")


def make_storage(url: str, heartbeat_interval: int | None = None) -> optuna.storages.RDBStorage:
    """RDBStorage for any SQLAlchemy URL; a SQLite file's folder is created and writers wait for the lock."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": 60}}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_interval or None)


def safe_url(url: str) -> str:
    """The storage URL with its password masked (for logs and MLflow params)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def open_study(
    name: str,
    storage: optuna.storages.BaseStorage,
    direction: str,
    pruner: optuna.pruners.BasePruner,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    """Create the study, or load it when one of that name exists (resume / join as a worker)."""
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"params.yaml tune.direction={direction!r}: use maximize or minimize.")
    study = optuna.create_study(
        study_name=name, storage=storage, direction=direction, pruner=pruner, sampler=sampler, load_if_exists=True
    )
    if study.direction.name.lower() != direction:
        raise ConfigError(
            f"study {name!r} exists with direction {study.direction.name.lower()}; "
            f"use another tune.study_name or tune.direction={study.direction.name.lower()}."
        )
    return study


@contextlib.contextmanager
def study_lock(url: str, study_name: str) -> Iterator[None]:
    """A lock shared by every worker of `study_name` on the storage at `url` (see the module doc)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            yield
            return
        with file_lock(f"{parsed.database}.{zlib.crc32(study_name.encode())}.lock"):
            yield
        return
    sql = {
        "postgresql": ("SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)"),
        "mysql": ("SELECT GET_LOCK(:n, 600)", "SELECT RELEASE_LOCK(:n)"),
    }.get(backend)
    if sql is None:
        log.warning("no study lock for %s storages: parallel workers may overshoot n_trials by a few", backend)
        yield
        return
    engine = create_engine(url, poolclass=NullPool)
    args = {"k": zlib.crc32(study_name.encode()), "n": f"cafa-tune-{study_name}"[:64]}
    try:
        with engine.connect() as conn:
            conn.execute(text(sql[0]), args)
            try:
                yield
            finally:
                conn.execute(text(sql[1]), args)
    finally:
        engine.dispose()


def reserve_trial(study: optuna.Study, n_trials: int, lock: Callable[[], contextlib.AbstractContextManager]) -> bool:
    """Enqueue one ticket if the study holds fewer than `n_trials` trials (any state). False = study full."""
    with lock():
        if len(study.get_trials(deepcopy=False)) >= n_trials:
            return False
        study.enqueue_trial({})
        return True


def run_worker(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    lock: Callable[[], contextlib.AbstractContextManager],
    timeout: float | None = None,
    callbacks: list | None = None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Run trials until the study holds `n_trials` or `timeout` seconds have passed since the start
    (no new trial starts after it) or `stop()` says so. Trials that raise are recorded FAIL and the loop
    goes on. Returns how many trials this worker ran."""
    start, ran = time.monotonic(), 0
    while (timeout is None or time.monotonic() - start < timeout) and reserve_trial(study, n_trials, lock):
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=callbacks)
        ran += 1
        if stop is not None and stop():
            break
    return ran


# --- results ----------------------------------------------------------------------------------------


def state_counts(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    return {
        f"n_{s.name.lower()}": sum(t.state == s for t in trials)
        for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    }


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best COMPLETE trial, or None when none has completed."""
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return None
    return study.best_trial


def write_best_params(path: str | os.PathLike, trial: FrozenTrial, study_name: str, metric: str) -> Path:
    """Dotted keys -> YAML that `cafa train --params-file PATH` (config.load_params) accepts; atomic write."""
    path = Path(path)
    header = (
        f"# best trial {trial.number} of Optuna study {study_name!r}: {metric} = {trial.value}\n"
        f"# use: cafa train --params-file {path}\n"
    )
    body = yaml.safe_dump({k: _plain(v) for k, v in trial.params.items()}, sort_keys=False)
    with atomic_write(path) as handle:
        handle.write(header + body)
    return path


def plot_study(study: optuna.Study, out_dir: str | os.PathLike, target_name: str = "Objective Value") -> list[Path]:
    """Optimization history, parameter importances (>= 2 complete trials) and parallel coordinates as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    makers = {
        "optimization_history": ovm.plot_optimization_history,
        "param_importances": ovm.plot_param_importances if complete >= 2 else None,
        "parallel_coordinate": ovm.plot_parallel_coordinate if complete >= 1 else None,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, maker in makers.items():
        if maker is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                axes = maker(study, target_name=target_name)
            except (ValueError, RuntimeError) as err:  # e.g. importances when every trial sampled the same values
                log.warning("skipping the %s plot: %s", name, err)
                continue
        fig = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        fig.savefig(out_dir / f"{name}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(out_dir / f"{name}.png")
    return written


def _plain(value: Any) -> Any:
    """numpy scalars -> Python (safe_dump refuses numpy types); floats keep full precision."""
    if hasattr(value, "item"):
        value = value.item()
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)
