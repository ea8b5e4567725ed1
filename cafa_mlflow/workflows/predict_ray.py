"""`cafa predict --engine ray`: the FASTA scored on a Ray cluster, written as the single-process submission.

Ray Data `map_batches` over the proteins (one block per predict.batch_size proteins, in FASTA order) with a
fixed actor pool (`ActorPoolStrategy(size=predict.workers)`): each actor loads the model once (the pinned
model version, from the tracking server the driver uses), one GPU per actor when the cluster has GPUs. A batch
carries the proteins' pooled vectors when the whole FASTA's embedding cache is complete under embed.out,
else their sequences (the actor's model embeds them). Each actor returns its batch's submission lines; the
driver, with Ray Data's `preserve_order`, receives them in FASTA order and writes the one submission (and
evidence TSV) itself. Workers open no MLflow run: the driver's `predict` run is the only one.

Ray is imported only here, only for engine=ray (`pip install '.[ray]'`); the package must be installed on
every node of a remote cluster (`ray start --address ...` on each)."""

from __future__ import annotations

import os
import socket
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cafa_mlflow.errors import CafaError, ConfigError, InputError, MissingToolError, MissingWeightsError, OutputError
from cafa_mlflow.io.fasta import FastaRecord, load_fasta
from cafa_mlflow.io.text import atomic_write
from cafa_mlflow.workflows.predict_batches import batches, score_frame
from cafa_mlflow.workflows.predict_job import PredictJob, ready_model

RAY_MISSING = "Ray is not installed: pip install '.[ray]'"
# an actor's CafaError comes back as its class name and line; raised again in the driver as this class
ERRORS = {e.__name__: e for e in (ConfigError, InputError, MissingToolError, MissingWeightsError, OutputError)}
ERRORS["RequestError"] = InputError  # serving's bad-input error (an InputError)


def preflight(job: PredictJob) -> Any:
    """Before any work: the ray module (import_ray) and a reachable cluster address (check_reachable)."""
    ray = import_ray()
    if job.ray_address:
        check_reachable(job.ray_address, job.ray_connect_timeout_s)
    return ray


def check_reachable(address: str, timeout_s: float) -> None:
    """A cluster address (HOST:PORT or ray://HOST:PORT) that accepts no connection within `timeout_s` is a
    one-line ConfigError naming it (Ray itself would retry for minutes); `auto` and `local` are Ray's to find."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"predict.ray_address={address!r}: expected HOST:PORT as `ray start --head` prints it, e.g. 10.0.0.1:6379."
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as conn:
            reason = None if os.environ.get("RAY_USE_TLS", "0") not in ("0", "") else grpc_answer(conn)
    except OSError as err:
        reason = "no answer" if isinstance(err, TimeoutError) else err.strerror or type(err).__name__
    if reason:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} within {timeout_s:g} s ({reason}); check --ray-address "
            "(`ray start --head` prints it) and that the cluster runs, or leave it out for a local Ray."
        )


# HTTP/2 client preface + an empty SETTINGS frame: a gRPC server (Ray's GCS, the Ray Client server) answers with
# its own SETTINGS frame (frame type 4, the 4th byte of its 9-byte header)
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
HTTP2_SETTINGS = 4


def grpc_answer(conn: socket.socket) -> str | None:
    """None when the peer speaks gRPC (HTTP/2) as Ray's servers do, else why not: a port where another service
    listens (or a proxy that accepts any connection) would make ray.init retry for minutes."""
    conn.sendall(HTTP2_PREFACE)
    header = conn.recv(9)
    if len(header) >= 4 and header[3] == HTTP2_SETTINGS:
        return None
    return f"the service there is not Ray's: it answered {header[:16]!r}" if header else "it closed the connection"


def import_ray() -> Any:
    """The ray module (with ray.data), or a one-line MissingToolError."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise MissingToolError(RAY_MISSING) from err
    return ray


class Scorer:
    """A Ray Data actor: the model loaded once in __init__, then one model call per batch."""

    def __init__(
        self, job: PredictJob, model_uri: str, tracking_uri: str, registry_uri: str, records: list[FastaRecord]
    ):
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(registry_uri)
        self.sub = job.submission
        self.evidence = job.evidence is not None
        self.error = None
        try:  # the whole FASTA, as one process would see it; the batches bring vectors or sequences
            self.model = ready_model(job, model_uri, records, [], embed=False).model
        except CafaError as err:  # sent back with the first batch (Ray does not carry an exception's class)
            self.error = err

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            if self.error is not None:
                raise self.error
            return self.score(batch)
        except CafaError as err:  # a user's error (a bad sequence, a model it cannot load): its one line, as data
            return {
                **self.row(np.asarray(batch["index"]), 0, b"", b""),
                "error": np.array([f"{type(err).__name__}|{err}"]),
            }

    def score(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        index = np.asarray(batch["index"], dtype=np.int64)
        frame = pd.DataFrame({"protein": [str(p) for p in batch["protein"]]})
        if "sequence" in batch:
            frame["sequence"] = [str(s) for s in batch["sequence"]]
        if "embedding" in batch:
            frame["embedding"] = list(np.stack([np.asarray(v, dtype=np.float32) for v in batch["embedding"]]))
        with tempfile.TemporaryDirectory(prefix="cafa-ray-") as tmp:
            part, evidence = Path(tmp) / "part.tsv", Path(tmp) / "evidence.tsv" if self.evidence else None
            lines = score_frame(self.model, frame, self.sub, part, evidence, header=True)
            text, evidence_text = part.read_bytes(), evidence.read_bytes() if evidence else b""
        return {**self.row(index, lines, text, evidence_text), "error": np.array([""])}

    @staticmethod
    def row(index: np.ndarray, lines: int, text: bytes, evidence: bytes) -> dict[str, np.ndarray]:
        """One output row per batch: where it starts, how many proteins, its submission and evidence bytes."""
        return {
            "first": np.array([int(index[0])]),
            "count": np.array([len(index)]),
            "contiguous": np.array([bool((np.diff(index) == 1).all())]),
            "lines": np.array([lines]),
            "text": np.array([text], dtype=object),
            "evidence": np.array([evidence], dtype=object),
        }


def connect(ray: Any, address: str | None) -> bool:
    """Attach to the cluster at `address` (or a running local one), else start a local Ray; True if started here."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)
    return True


def pool_size(ray: Any, workers: int | None) -> tuple[int, int]:
    """(actors, GPUs per actor): predict.workers (default: one per GPU, else one per node), 1 GPU each with GPUs."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    return workers or gpus or max(nodes, 1), 1 if gpus else 0


def predict_ray(job: PredictJob, model_uri: str) -> tuple[int, int]:
    """The Ray engine: score the job's FASTA on Ray into its submission (and evidence), each actor loading
    `model_uri` (the pinned version); returns (lines, actors)."""
    import mlflow

    ray = preflight(job)
    records = load_fasta(job.fasta)
    ready = ready_model(job, job.model_uri, records, records)  # the driver's model: inputs and cached vectors
    blocks = list(batches(records, ready.vectors, ready.inputs, job.batch_size))
    for start, block in zip(range(0, len(records), job.batch_size), blocks):
        block.insert(0, "index", np.arange(start, start + len(block)))  # where each batch sits in the FASTA
    started = connect(ray, job.ray_address)
    try:
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        actors, gpus = pool_size(ray, job.workers)
        ds = ray.data.from_pandas(blocks).map_batches(
            Scorer,
            fn_constructor_kwargs={
                "job": job,
                "model_uri": model_uri,
                "tracking_uri": mlflow.get_tracking_uri(),
                "registry_uri": mlflow.get_registry_uri(),
                "records": records,
            },
            batch_size=job.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=gpus,
        )
        lines = _write(ds, job.written, job.evidence_written, len(records))
    finally:
        if started:
            ray.shutdown()
    return lines, actors


def _write(ds: Any, out: Path, evidence: Path | None, n: int) -> int:
    """The actors' batches, in FASTA order, into `out` (and `evidence`, the first batch's header only)."""
    lines, expected = 0, 0
    with atomic_write(out, "wb") as sub, atomic_write(evidence, "wb") if evidence else nullcontext() as ev:
        for row in ds.iter_rows():
            if row["error"]:
                kind, _, message = str(row["error"]).partition("|")
                raise ERRORS.get(kind, CafaError)(message)
            if int(row["first"]) != expected or not bool(row["contiguous"]):
                raise RuntimeError(f"Ray returned proteins out of order (batch at {row['first']}, expected {expected})")
            sub.write(bytes(row["text"]))
            if ev is not None:
                text = bytes(row["evidence"])
                ev.write(text if expected == 0 else text.partition(b"\n")[2])  # one header line, the first batch's
            expected += int(row["count"])
            lines += int(row["lines"])
        if expected != n:
            raise RuntimeError(f"Ray returned {expected} of {n} proteins")
    return lines
