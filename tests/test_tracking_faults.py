"""Tracking after races and kills: N workers on a new SQLite store, runs a `kill -9` left RUNNING, and
model versions whose registration died right after "Created version"."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
from cafa_fixtures import forget_mlflow_run
from mlflow.tracking import MlflowClient

from cafa_mlflow.tracking import recovery as tracking_recovery
from cafa_mlflow.tracking import runs

REPO = Path(__file__).resolve().parent.parent
MODEL = "cafa-faults"


def params(uri: str) -> dict:
    return {
        "tracking": {"uri": uri, "experiment": "faults", "system_metrics": False},
        "prepare": {"subsample": 0, "min_count": 1, "val_fraction": 0.1, "seed": 0},
    }


def child(code: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    """A Python process running `code` with this worktree first on the path."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **(env or {})}
    for var in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One migrated store; tests copy it (creating one takes seconds)."""
    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, monkeypatch, template):
    shutil.copy(template, tmp_path / "mlflow.db")
    forget_mlflow_run(monkeypatch)
    monkeypatch.chdir(tmp_path)  # artifacts (./mlruns) stay in the temp folder
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    yield uri
    mlflow.set_tracking_uri(None)


WORKER = """
import os, sys, time
from pathlib import Path
from cafa_mlflow.tracking import runs
uri, barrier, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
params = {"tracking": {"uri": uri, "experiment": "race", "system_metrics": False},
          "prepare": {"subsample": 0, "min_count": 1, "val_fraction": 0.1, "seed": 0}}
(barrier / str(os.getpid())).touch()  # imports done: wait for the others, then all open the store at once
while len(list(barrier.iterdir())) < n:
    time.sleep(0.001)
with runs.start_run(params, "tune") as run:
    runs.log_metrics({"x": 1.0})
print(run.info.run_id)
"""


@pytest.mark.slow
def test_four_workers_started_at_once_on_a_new_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/new/mlflow.db"  # not even its folder exists
    barrier = tmp_path / "ready"
    barrier.mkdir()
    workers = [child(WORKER, uri, str(barrier), "4") for _ in range(4)]
    results = [(w.wait(timeout=240), w.stdout.read().decode(), w.stderr.read().decode()) for w in workers]
    assert [rc for rc, _, _ in results] == [0, 0, 0, 0], [err[-2000:] for _, _, err in results]
    ids = {out.strip() for _, out, _ in results}
    assert len(ids) == 4
    client = MlflowClient(uri)
    experiments = [e for e in client.search_experiments() if e.name == "race"]
    assert len(experiments) == 1  # one experiment, created once
    runs = client.search_runs([experiments[0].experiment_id])
    assert {r.info.run_id for r in runs} == ids and {r.info.status for r in runs} == {"FINISHED"}
    assert all(r.data.metrics == {"x": 1.0} for r in runs)


def test_store_lock_only_for_sqlite_files(tmp_path):
    assert tracking_recovery.sqlite_file(f"sqlite:///{tmp_path}/a.db?mode=rw") == tmp_path / "a.db"
    assert tracking_recovery.sqlite_file("sqlite:///mlflow.db") == Path("mlflow.db")
    assert tracking_recovery.sqlite_file("sqlite://") is None
    assert tracking_recovery.sqlite_file("http://127.0.0.1:5000") is None
    with tracking_recovery.store_lock(f"sqlite:///{tmp_path}/x/mlflow.db"):
        assert (tmp_path / "x" / "mlflow.db.lock").exists()
    assert (tmp_path / "x" / "mlflow.db").is_file()  # the schema was created under the lock


# ---- runs left RUNNING by kill -9 -----------------------------------------------------------------


KILLED_TRAIN = """
import os, sys, time
from cafa_mlflow.tracking import runs
params = {"tracking": {"uri": sys.argv[1], "experiment": "faults", "system_metrics": False},
          "prepare": {"subsample": 0, "min_count": 1, "val_fraction": 0.1, "seed": 0}}
with runs.start_run(params, "train") as run:
    print(run.info.run_id, flush=True)
    time.sleep(600)
"""


def fake_run(client: MlflowClient, experiment_id: str, entry_point: str, pid: int, host: str, start_ms: int) -> str:
    run = client.create_run(
        experiment_id, start_time=start_ms, tags={"entry_point": entry_point, "pid": str(pid), "host": host}
    )
    return run.info.run_id


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.slow
def test_kill_9_leaves_running_and_next_start_marks_it_killed(store):
    proc = child(KILLED_TRAIN, store)
    killed = proc.stdout.readline().decode().strip()  # the run is open
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    client = MlflowClient(store)
    run = client.get_run(killed)
    assert run.info.status == "RUNNING" and run.data.tags["pid"] == str(proc.pid)
    assert run.data.tags["host"] == socket.gethostname()
    experiment = run.info.experiment_id

    now = int(time.time() * 1000)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.05)
        others = {
            "live": fake_run(client, experiment, "train", sleeper.pid, socket.gethostname(), now),
            "other_host": fake_run(client, experiment, "train", dead_pid(), "elsewhere", now),
            "other_step": fake_run(client, experiment, "predict", dead_pid(), socket.gethostname(), now),
        }
        # a pid now held by a process that started later than the run: the run's own process died
        reused = fake_run(client, experiment, "train", sleeper.pid, socket.gethostname(), now - 3_600_000)
        with runs.start_run(params(store), "train") as current:
            pass
        assert client.get_run(current.info.run_id).info.status == "FINISHED"
        for run_id in (killed, reused):
            run = client.get_run(run_id)
            assert run.info.status == "KILLED" and run.info.end_time is not None
            assert "ended without closing this run" in run.data.tags["stale"]
            assert f"marked KILLED by the next train start (run {current.info.run_id})" in run.data.tags["stale"]
        for run_id in others.values():
            assert client.get_run(run_id).info.status == "RUNNING" and "stale" not in client.get_run(run_id).data.tags
    finally:
        sleeper.kill()
        sleeper.wait()


# ---- registry: a kill just after "Created version" ----------------------------------------------------


KILLED_REGISTER = """
import os, signal, sys
import mlflow
from cafa_mlflow.tracking import runs
mlflow.set_tracking_uri(sys.argv[1])
register = mlflow.register_model
def register_then_die(*args, **kwargs):  # killed right after "Created version"
    register(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
mlflow.register_model = register_then_die
runs.register_and_promote(sys.argv[2], sys.argv[3], 0.9, "split0")
"""


def logged_model(store: str) -> str:
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("faults")
    with mlflow.start_run(tags={"entry_point": "train"}) as run:
        mlflow.log_text("flavors: {}\n", "model/MLmodel")
    return f"runs:/{run.info.run_id}/model"


@pytest.mark.slow
def test_kill_after_created_version_is_marked_incomplete_never_champion(store):
    client = MlflowClient(store)
    v1, promoted = runs.register_and_promote(logged_model(store), MODEL, 0.5, "split0")
    assert (v1, promoted) == ("1", True)
    assert client.get_model_version(MODEL, v1).tags["status"] == "complete"

    proc = child(KILLED_REGISTER, store, logged_model(store), MODEL)
    assert proc.wait(timeout=120) == -signal.SIGKILL
    half = client.get_model_version(MODEL, "2")  # created with its identity in one call, then the kill
    assert half.tags["val_f_w_mean"] == "0.900000" and half.tags["val_split"] == "split0"
    assert half.tags["status"] == "registering" and "promoted" not in half.tags
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == v1

    v3, promoted = runs.register_and_promote(logged_model(store), MODEL, 0.6, "split0")
    assert (v3, promoted) == ("3", True)
    half = client.get_model_version(MODEL, "2")
    assert half.tags["status"] == "incomplete" and half.tags["promoted"] == "false"
    assert half.description.startswith("INCOMPLETE: its registration was interrupted")
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "3"  # not 2, despite its 0.9
    assert client.get_model_version(MODEL, "3").tags["status"] == "complete"
    assert client.get_model_version(MODEL, "1").tags["status"] == "complete"  # finished ones left alone


def test_legacy_half_version_and_champion_killed_before_complete(store):
    client = MlflowClient(store)
    runs.register_and_promote(logged_model(store), MODEL, 0.5, "split0")
    legacy = mlflow.register_model(logged_model(store), MODEL).version  # as the old code left it: no tags at all
    by_hand = mlflow.register_model(__file__, MODEL).version  # registered by a user, not by a step: left alone
    # killed between taking the alias and its last tag
    champ = mlflow.register_model(
        logged_model(store), MODEL, tags={"status": "registering", "pid": str(dead_pid()), "host": socket.gethostname()}
    ).version
    client.set_registered_model_alias(MODEL, "champion", champ)
    assert tracking_recovery.mark_incomplete_versions(MODEL, "champion") == [str(legacy)]
    assert client.get_model_version(MODEL, legacy).tags["status"] == "incomplete"
    assert client.get_model_version(MODEL, by_hand).tags == {}
    assert client.get_model_version(MODEL, champ).tags["status"] == "complete"
    assert client.get_model_version(MODEL, champ).tags["promoted"] == "true"
    assert tracking_recovery.mark_incomplete_versions(MODEL, "champion") == []  # idempotent
