"""`cafa predict` as one job: what it reads and writes, decided once from params (`PredictJob`), and the one
preparation every engine (one process, a shard, a Ray actor) runs on the model (`ready_model`).

Paths: `--shard i/N` writes `OUT.shard-i-of-N` (`part_path`; `EVIDENCE.shard-i-of-N` with `--evidence`) and the
manifest `OUT.shard-i-of-N.json` (`manifest_path`); `PredictJob.written` and friends are the only places that
apply these rules to a job, `cafa merge-shards` the only other user (to find the parts)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cafa_mlflow.errors import ConfigError
from cafa_mlflow.io import outputs
from cafa_mlflow.io.fasta import FastaRecord
from cafa_mlflow.io.text import claim_files

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import EmbedParams, Params, SubmissionParams


SAVED_BY = "ensemble"  # the step whose finalized test scores predict may reuse (<outputs.predictions>/ensemble)


def parse_shard(text: str) -> tuple[int, int]:
    """'i/N' -> (i, N) with 0 <= i < N; ConfigError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not int(match[1]) < int(match[2]):
        raise ConfigError(f"predict.shard={text!r}: expected i/N with 0 <= i < N, e.g. --shard 0/4 ... --shard 3/4.")
    return int(match[1]), int(match[2])


def part_path(out: str | Path, index: int, count: int) -> Path:
    """The file shard `index` of `count` writes for the output `out`."""
    return Path(f"{out}.shard-{index}-of-{count}")


def manifest_path(part: str | Path) -> Path:
    """The manifest beside a part file."""
    return Path(f"{part}.json")


def default_fasta(params: Params) -> str:
    """The prepared test proteins (their embeddings are cached by `embed`), else data.test_fasta."""
    prepared = Path(params.prepare.out) / "test.fasta"
    return str(prepared) if prepared.is_file() else params.data.test_fasta


@dataclass(frozen=True)
class PredictJob:
    """One `cafa predict`: its input, outputs, engine and the settings the engines read."""

    fasta: str
    out: Path  # the submission (--out); a shard writes `written`
    evidence: Path | None  # --evidence as given; a shard writes `evidence_written`
    shard: tuple[int, int] | None  # (i, N) of --shard i/N
    engine: str  # local | ray
    model_uri: str
    batch_size: int
    threads: int
    ray_address: str | None
    ray_connect_timeout_s: float
    workers: int | None
    submission: SubmissionParams
    embed: EmbedParams
    reuse_from: Path | None = None  # the chain's saved scores (predict.reuse, no --evidence): workflows/score_cache.py

    @classmethod
    def from_params(cls, params: Params) -> PredictJob:
        """The job of params' predict block (defaults filled in); ConfigError for flags that exclude each other."""
        cfg = params.predict
        shard = parse_shard(cfg.shard) if cfg.shard else None
        if shard and cfg.engine == "ray":
            raise ConfigError("predict.shard and predict.engine=ray exclude each other: Ray runs every shard itself.")
        return cls(
            fasta=cfg.fasta or default_fasta(params),
            out=Path(cfg.out),
            evidence=Path(cfg.evidence) if cfg.evidence else None,
            shard=shard,
            engine=cfg.engine,
            model_uri=cfg.model_uri or f"models:/{params.tracking.registered_model}@champion",
            batch_size=max(cfg.batch_size, 1),
            threads=cfg.threads,
            ray_address=cfg.ray_address,
            ray_connect_timeout_s=cfg.ray_connect_timeout_s,
            workers=cfg.workers,
            submission=params.submission,
            embed=params.embed,
            reuse_from=Path(params.outputs.predictions) / SAVED_BY if cfg.reuse and not cfg.evidence else None,
        )

    @property
    def written(self) -> Path:
        """The submission file this job writes: --out, or its part file for a shard."""
        return part_path(self.out, *self.shard) if self.shard else self.out

    @property
    def evidence_written(self) -> Path | None:
        """The evidence TSV this job writes (None without --evidence)."""
        if self.evidence is None:
            return None
        return part_path(self.evidence, *self.shard) if self.shard else self.evidence

    @property
    def manifest(self) -> Path | None:
        """The shard's manifest (None when the job is not a shard)."""
        return manifest_path(self.written) if self.shard else None

    @property
    def builds_cache(self) -> bool:
        """Whether the job embeds the whole FASTA into the cache (one process does; a shard or Ray reads a
        complete cache when there is one, else the model embeds the sequences it scores)."""
        return self.engine == "local" and self.shard is None

    def outputs(self) -> dict[str, Path | None]:
        """The files this job writes, by the flag that names them."""
        return {"--out": self.written, "--evidence": self.evidence_written, "the shard manifest": self.manifest}

    def claim_outputs(self) -> None:
        """Before any work: every output is distinct from the FASTA and the others, writable, and missing or
        written by the product (OutputError, one line)."""
        claim_files({"--fasta": self.fasta}, self.outputs())

    def mark_outputs(self) -> None:
        """Record the written files as the product's (so the next run may replace them)."""
        outputs.mark_files(*self.outputs().values())


@dataclass
class ReadyModel:
    model: Any  # a loaded GoModel pyfunc that knows the whole input
    inputs: set[str]  # the input columns besides `protein` the batches carry
    vectors: np.ndarray | None  # pooled vectors of the proteins scored here (rows in order), or None


def ready_model(
    job: PredictJob, uri: str, records: list[FastaRecord], mine: list[FastaRecord], embed: bool = True
) -> ReadyModel:
    """The one preparation of every engine: load the model at `uri`, set its tool threads and the whole input
    `records` (its leakage rules then see every protein of the FASTA, whatever the batch, shard or Ray actor),
    and, when `embed`, the inputs of the proteins `mine` it scores here (`model_inputs`)."""
    from cafa_mlflow.serving.model_loader import load_model
    from cafa_mlflow.serving.pyfunc import required_inputs

    model = load_model(uri)  # names the version, alias and missing path when artifacts are gone
    prepare_model(model, records, job.threads)
    if not embed:
        return ReadyModel(model, required_inputs(model), None)
    vectors, inputs = model_inputs(model, job, records, mine)
    return ReadyModel(model, inputs, vectors)


def prepare_model(model: Any, records: list[FastaRecord], threads: int) -> None:
    """The whole-input rule: a loaded GoModel's tool threads, and the whole input it will score in batches."""
    python_model = model.unwrap_python_model()
    python_model.set_threads(threads)
    python_model.set_query_set([r.id for r in records], [r.sequence for r in records], [r.accession for r in records])


def model_inputs(
    model: Any, job: PredictJob, records: list[FastaRecord], mine: list[FastaRecord]
) -> tuple[np.ndarray | None, set[str]]:
    """(pooled vectors of `mine` or None, input columns) for a loaded GoModel, embedded with the settings it was
    fitted on: the cache of all `records` under embed.out, built now when `job.builds_cache`; otherwise a
    complete one when there is one, else the `sequence` column (the model embeds them)."""
    from cafa_mlflow.serving.pyfunc import required_inputs

    inputs = required_inputs(model)
    if "embedding" not in inputs:
        return None, inputs
    from cafa_mlflow.embed import embed_fasta, load_embeddings
    from cafa_mlflow.embed.resolve import pooled_rows, runtime_options
    from cafa_mlflow.embed.runner import complete_cache

    settings = model.unwrap_python_model().settings  # the encoder the model carries (or a fair-esm name)
    if job.builds_cache:
        found = embed_fasta(job.fasta, settings, job.embed.out, **runtime_options(job.embed)).cache_dir
    else:
        found = complete_cache([r.id for r in records], [r.sequence for r in records], settings, job.embed.out)
        if found is None:
            return None, (inputs - {"embedding"}) | {"sequence"}
    return pooled_rows(load_embeddings(found), [r.id for r in mine], str(found)), inputs
