"""Predict across machines: `cafa predict --shard i/N` scores one of N shards of a FASTA into a part file, and
`cafa merge-shards --out OUT` joins the N parts into the submission a single `cafa predict` writes, byte for byte.

Shard rule: contiguous blocks of the FASTA order. With n proteins, shard i (0 <= i < N) holds proteins
i*n//N .. (i+1)*n//N - 1 of the file (FASTA ids are unique, so a protein is in exactly one shard). The
single-process writer writes proteins in FASTA order, so joining the parts in shard order restores it.

Shard i of N with `--out OUT` writes `OUT.shard-i-of-N` (and `EVIDENCE.shard-i-of-N` with `--evidence`) plus
the manifest `OUT.shard-i-of-N.json` (the path rules: predict_job.part_path, manifest_path): the FASTA's sha256,
i, N, the shard's protein count and first/last id, the model and the part's sha256. The merge checks them (all N
present once, one FASTA, one model, parts unchanged) and stops with one line naming what is wrong.

Embeddings: when the whole FASTA's cache is complete under embed.out (`cafa embed --fasta F`, e.g. with
torchrun, or an earlier `cafa predict`), a shard reads its proteins' vectors from it; otherwise the model
embeds the shard's sequences itself (the same units, batching and float16 rounding as the cache)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.fasta import FastaRecord, load_fasta
from cafa_mlflow.io.integrity import digest
from cafa_mlflow.io.outputs import mark_files
from cafa_mlflow.io.text import atomic_write, claim_files, write_json
from cafa_mlflow.workflows.predict_batches import batches, join_files, score_frames
from cafa_mlflow.workflows.predict_job import (  # noqa: F401  (parse_shard: the shard flag's rule, named here too)
    PredictJob,
    manifest_path,
    parse_shard,
    part_path,
    ready_model,
)

FORMAT = "cafa-predict-shard/1"
MANIFEST_KEYS = (
    "format",
    "fasta",
    "fasta_sha256",
    "fasta_proteins",
    "shard",
    "shards",
    "proteins",
    "first",
    "last",
    "model",
    "lines",
    "part_sha256",
    "evidence_sha256",
)
COUNT_KEYS = ("fasta_proteins", "shard", "shards", "proteins", "lines")
PART = re.compile(r"\.shard-(\d+)-of-(\d+)$")


def shard_bounds(n: int, index: int, count: int) -> tuple[int, int]:
    """Positions [lo, hi) of shard `index` of `count` among n proteins (contiguous, sizes differ by at most 1)."""
    return n * index // count, n * (index + 1) // count


@dataclass
class ShardResult:
    part: Path
    lines: int
    proteins: int  # proteins of the shard (scored or not)


def predict_shard(job: PredictJob, model_id: str) -> ShardResult:
    """The shard engine: score the job's shard of its FASTA into its part file (+ evidence part) and manifest
    (`model_id`: the pinned model URI recorded there)."""
    index, count = job.shard
    records = load_fasta(job.fasta)
    lo, hi = shard_bounds(len(records), index, count)
    mine = records[lo:hi]
    ready = ready_model(job, job.model_uri, records, mine)  # the whole FASTA: scores as the single process does
    frames = batches(mine, ready.vectors, ready.inputs, job.batch_size)
    lines = score_frames(ready.model, frames, job.written, job.submission, job.evidence_written)
    write_json(job.manifest, shard_manifest(job, records, mine, lines, model_id))
    return ShardResult(job.written, lines, len(mine))


def shard_manifest(
    job: PredictJob, records: list[FastaRecord], mine: list[FastaRecord], lines: int, model_id: str
) -> dict:
    """What `cafa merge-shards` checks of a written shard (keys: MANIFEST_KEYS)."""
    index, count = job.shard
    evidence = job.evidence_written
    return {
        "format": FORMAT,
        "fasta": str(job.fasta),
        "fasta_sha256": digest(job.fasta),
        "fasta_proteins": len(records),
        "shard": index,
        "shards": count,
        "proteins": len(mine),
        "first": mine[0].id if mine else None,
        "last": mine[-1].id if mine else None,
        "model": model_id,
        "lines": lines,
        "part_sha256": digest(job.written),
        "evidence_sha256": digest(evidence) if evidence else None,
    }


def find_parts(out: str | Path) -> list[Path]:
    """The part files `out.shard-i-of-N` beside `out`."""
    out = Path(out)
    return sorted(p for p in out.parent.glob(f"{out.name}.shard-*-of-*") if PART.search(p.name))


def read_manifest(part: Path) -> dict:
    """The manifest of the part file `part`; InputError (one line naming the manifest) when it is missing,
    not JSON, not a shard manifest, or lacks a key or has one of the wrong type."""
    path = manifest_path(part)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(
            f"{part}: its manifest {path} is missing or unreadable ({type(err).__name__}); "
            "run its `cafa predict --shard i/N` again."
        ) from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{path}: not a shard manifest of `cafa predict --shard`; give the part files only.")
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    wrong = [key for key in COUNT_KEYS if key not in missing and type(manifest[key]) is not int]
    if missing or wrong:
        what = f"lacks {', '.join(missing)}" if missing else f"has a non-integer {', '.join(wrong)}"
        raise InputError(
            f"{path}: the shard manifest {what} (damaged or edited); run its `cafa predict --shard i/N` again."
        )
    return manifest


def read_manifests(parts: list[Path]) -> list[dict]:
    """The manifests of the parts, checked against each other: one N, one FASTA, one model, each shard once,
    none missing, parts unchanged; InputError (one line) naming the part otherwise."""
    manifests = [{**read_manifest(part), "path": part} for part in parts]
    first = manifests[0]
    for m in manifests[1:]:
        for key, what in (("shards", "shard counts"), ("fasta_sha256", "FASTA files"), ("model", "models")):
            if m[key] != first[key]:
                raise InputError(
                    f"{m['path']} and {first['path']} come from different {what} ({m[key]} vs {first[key]}); "
                    "merge the parts of one `cafa predict --shard i/N` run."
                )
    count, seen = first["shards"], {}
    for m in manifests:
        if m["shard"] in seen:
            raise InputError(
                f"{m['path']} and {seen[m['shard']]['path']} are both shard {m['shard']} of {count}; give each once."
            )
        seen[m["shard"]] = m
    missing = [i for i in range(count) if i not in seen]
    if missing:
        i = missing[0]
        raise InputError(
            f"shard {i} of {count} is missing ({len(missing)} of {count} missing): expected "
            f"{part_path(_out_of(first['path']), i, count)}; run `cafa predict --shard {i}/{count}` on {first['fasta']}."
        )
    ordered = [seen[i] for i in range(count)]
    for m in ordered:
        if digest(m["path"]) != m["part_sha256"]:
            raise InputError(
                f"{m['path']}: changed since shard {m['shard']} of {count} wrote it (sha256 differs from its manifest); "
                f"run `cafa predict --shard {m['shard']}/{count}` again."
            )
    return ordered


def _out_of(part: Path) -> Path:
    return part.with_name(PART.sub("", part.name))


@dataclass
class MergeResult:
    out: Path
    lines: int
    shards: int
    proteins: int  # proteins of the FASTA (scored or not)


def merge_shards(
    out: str | Path, parts: list[str | Path] | None = None, evidence: str | Path | None = None
) -> MergeResult:
    """Join the part files (default: `out.shard-*-of-*`) in shard order into `out` (and the evidence parts
    `evidence.shard-i-of-N` into `evidence`, one header line); both written atomically."""
    found = [Path(p) for p in parts] if parts else find_parts(out)
    if not found:
        raise InputError(
            f"{out}: no part files {out}.shard-i-of-N; run `cafa predict --shard i/N --out {out}` for each i "
            "(or list the parts)."
        )
    claim_files({f"part {p}": p for p in found}, {"--out": out, "--evidence": evidence})
    ordered = read_manifests(found)
    count = ordered[0]["shards"]
    if sum(m["proteins"] for m in ordered) != ordered[0]["fasta_proteins"]:
        raise InputError(
            f"{found[0]}: the shards hold {sum(m['proteins'] for m in ordered)} proteins, the FASTA has "
            f"{ordered[0]['fasta_proteins']}; run the shards again."
        )
    evidence_parts = evidence_paths(ordered, evidence) if evidence else []  # checked before anything is written
    join_files([Path(m["path"]) for m in ordered], out)
    if evidence:
        join_evidence(evidence_parts, evidence)
    mark_files(out, evidence)
    lines = sum(int(m["lines"]) for m in ordered)
    return MergeResult(Path(out), lines, count, ordered[0]["fasta_proteins"])


def evidence_paths(ordered: list[dict], evidence: str | Path) -> list[Path]:
    """The evidence parts `evidence.shard-i-of-N` of the checked manifests, each the one its shard wrote."""
    paths = []
    for m in ordered:
        path, count = part_path(evidence, m["shard"], m["shards"]), m["shards"]
        if m.get("evidence_sha256") is None or not path.is_file() or digest(path) != m["evidence_sha256"]:
            raise InputError(
                f"{path}: missing or not the evidence shard {m['shard']} of {count} wrote; run "
                f"`cafa predict --shard {m['shard']}/{count} --evidence {evidence}` again."
            )
        paths.append(path)
    return paths


def join_evidence(parts: list[Path], out: str | Path) -> None:
    """Evidence TSVs joined in order: the first non-empty part's header, the other parts without theirs."""
    with atomic_write(out, "wb") as handle:
        header = False
        for part in parts:
            with open(part, "rb") as src:
                if header:
                    src.readline()
                elif part.stat().st_size:
                    header = True
                shutil.copyfileobj(src, handle)
