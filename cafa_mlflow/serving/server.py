"""`mlflow models serve` on 127.0.0.1 as a context manager (tests, benchmarks): start it on a free port,
wait for /ping, post requests, stop the whole process group on exit."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]  # so the server process imports this cafa_mlflow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, url: str, proc: subprocess.Popen, log: Path) -> None:
        self.url, self.proc, self.log = url, proc, log

    def post(self, body: dict[str, Any], timeout: float = 300) -> tuple[int, dict]:
        """(HTTP status, decoded JSON body) of POST /invocations."""
        request = urllib.request.Request(
            f"{self.url}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


@contextlib.contextmanager
def serve(
    model: str,
    port: int | None = None,
    timeout: float = 180,
    env: dict | None = None,
    env_manager: str = "local",
    cwd: str | os.PathLike | None = None,
) -> Iterator[Server]:
    """A running `mlflow models serve -m model --env-manager <env_manager>` on 127.0.0.1 (RuntimeError with
    the server's last log lines when it does not answer /ping within `timeout` seconds).

    env_manager "local" runs this interpreter with this checkout first on PYTHONPATH; any other ("uv") runs the
    environment MLflow builds from the model's requirements, with `env` as the whole environment when given
    (e.g. no PYTHONPATH: the model's own code, not this checkout)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    if env_manager == "local":
        env = {**os.environ, **(env or {})}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    else:
        env = dict(os.environ if env is None else env)
    # the server runs `uvicorn` (and uv) by name: the ones beside this interpreter (an unactivated venv)
    env["PATH"] = os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix="cafa-serve-") as tmp:
        log = Path(tmp) / "server.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model), "--env-manager", env_manager]
                + ["-h", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own process group: stopping it stops its workers too
            )
        try:
            _wait_ping(url, proc, log, timeout)
            yield Server(url, proc, log)
        finally:
            _stop(proc)


def _wait_ping(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise RuntimeError(f"mlflow models serve at {url} did not answer /ping (exit {proc.poll()}):\n{tail}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    pgid = os.getpgid(proc.pid)
    os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        proc.wait()
