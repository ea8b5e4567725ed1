"""What kills, crashes and races leave in the tracking store, and their repair: a lock while a SQLite
store's schema is created, RUNNING runs of dead processes, model versions whose registration died."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from cafa_mlflow.errors import ConfigError
from cafa_mlflow.io.locks import file_lock

log = logging.getLogger(__name__)
STORE_LOCK_TIMEOUT_S = 300  # a worker waits this long for another one creating the store's schema
_READY_STORES: set[str] = set()
SERVER_TIMEOUT_S = 5.0  # how long the start-up probe of an http(s) tracking server waits
_REACHABLE: set[str] = set()
PID_TAG, HOST_TAG = "pid", "host"  # who runs a run or registers a version: finds those a kill -9 left behind
PID_START_SLACK_S = 1.0  # a run's process started at most this long after the run's recorded start time
STATUS_TAG = "status"  # on model versions: registering -> complete, or incomplete when the registration died


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///path` URI (relative to the working folder); None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?")[0]
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold a file lock beside a SQLite store while its schema is created (first use in this process) and
    while the experiment is looked up or created: N workers started at once on a new store would
    otherwise race MLflow's schema creation (`index ... already exists`) and experiment creation."""
    db = sqlite_file(uri)
    if db is None:
        yield
        return
    with file_lock(f"{db}.lock", STORE_LOCK_TIMEOUT_S, "another process preparing the tracking store"):
        if uri not in _READY_STORES:
            MlflowClient(uri).search_experiments(max_results=1)  # creates or upgrades the schema
            _READY_STORES.add(uri)
        yield


def check_server(uri: str, timeout_s: float = SERVER_TIMEOUT_S) -> None:
    """Fail fast on an unreachable tracking server: one request with a short timeout (no retries) before
    any work, instead of minutes of client retries later. Other stores (sqlite, file) are not probed."""
    if not uri.startswith(("http://", "https://")) or uri in _REACHABLE:
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            pass
    except urllib.error.HTTPError:  # it answered (e.g. a proxy path without /health): reachable
        pass
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise ConfigError(
            f"MLflow tracking server {uri} is unreachable ({' '.join(str(reason).split())[:120]}; "
            f"checked once with a {timeout_s:g} s timeout); start it (`mlflow server --host HOST --port PORT`) or point --tracking-uri / "
            "MLFLOW_TRACKING_URI at a running server or a local store such as sqlite:///mlflow.db."
        ) from None
    _REACHABLE.add(uri)


def process_tags() -> dict[str, str]:
    """pid and host of this process: with them a later start can tell a run a `kill -9` left RUNNING."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def process_alive(tags: Mapping[str, str], since_ms: int) -> bool:
    """Whether the process named by `tags` (pid, host) may still be working on something it began at
    `since_ms`. Processes of other hosts count as alive (they cannot be checked from here), and so do
    tags without a pid; a pid that now belongs to a process started later was reused: the old one died."""
    import psutil

    if tags.get(HOST_TAG) != socket.gethostname() or not str(tags.get(PID_TAG, "")).isdigit():
        return True
    try:
        process = psutil.Process(int(tags[PID_TAG]))
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped by its parent
            return False
        return process.create_time() <= since_ms / 1000 + PID_START_SLACK_S
    except psutil.Error:  # no such process: it has ended
        return False


def mark_stale_runs(experiment_id: str, entry_point: str, current_run_id: str | None = None) -> list[str]:
    """Mark KILLED this host's RUNNING runs of `entry_point` whose process has died (e.g. by `kill -9`),
    with a tag saying so; runs of live processes and of other hosts are left alone. Returns their ids."""
    client, host = MlflowClient(), socket.gethostname()
    if "'" in host or "'" in entry_point:
        return []
    runs = client.search_runs(
        [experiment_id],
        f"tags.entry_point = '{entry_point}' AND tags.{HOST_TAG} = '{host}' AND attributes.status = 'RUNNING'",
        max_results=1000,
    )
    stale = [r for r in runs if r.info.run_id != current_run_id and not process_alive(r.data.tags, r.info.start_time)]
    for run in stale:
        note = (
            f"process {run.data.tags.get(PID_TAG)} on {host} ended without closing this run (killed or crashed); "
            f"marked KILLED by the next {entry_point} start (run {current_run_id})"
        )
        client.set_tag(run.info.run_id, "stale", note)
        client.set_terminated(run.info.run_id, "KILLED", end_time=int(time.time() * 1000))
    if stale:
        log.warning("marked %d stale %s run(s) KILLED: %s", len(stale), entry_point, [r.info.run_id for r in stale])
    return [r.info.run_id for r in stale]


def _from_entry_point(client: MlflowClient, run_id: str | None) -> bool:
    """Whether a version's run was opened by one of our entry points (and not, say, registered by hand)."""
    try:
        return bool(run_id) and "entry_point" in client.get_run(run_id).data.tags
    except mlflow.exceptions.MlflowException:
        return False


def mark_incomplete_versions(name: str, champion_alias: str) -> list[str]:
    """Repair versions of `name` whose registration died: status 'registering' by a dead process of this
    host, or registered by an entry point before status tags existed and left without a 'promoted' tag.
    One that holds the champion alias got it last, so it is finished (complete); the others are tagged
    status=incomplete, promoted=false and described, so nobody takes them for a champion.
    Returns the versions marked incomplete."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException:  # no such model yet
        return []
    try:
        champion = client.get_model_version_by_alias(name, champion_alias).version
    except mlflow.exceptions.MlflowException:
        champion = None
    marked = []
    for mv in versions:
        status = mv.tags.get(STATUS_TAG)
        legacy = status is None and "promoted" not in mv.tags and _from_entry_point(client, mv.run_id)
        if not (legacy or (status == "registering" and not process_alive(mv.tags, mv.creation_timestamp))):
            continue
        if str(mv.version) == str(champion):
            client.set_model_version_tag(name, mv.version, "promoted", "true")
            client.set_model_version_tag(name, mv.version, STATUS_TAG, "complete")
            continue
        client.set_model_version_tag(name, mv.version, "promoted", "false")
        client.set_model_version_tag(name, mv.version, STATUS_TAG, "incomplete")
        client.update_model_version(
            name,
            mv.version,
            description="INCOMPLETE: its registration was interrupted (process killed) before it was compared "
            "with the champion; never promoted. Delete it or register the model again.",
        )
        marked.append(str(mv.version))
    if marked:
        log.warning("%s: marked version(s) %s incomplete (their registration was interrupted)", name, marked)
    return marked
