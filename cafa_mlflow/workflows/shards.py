"""Predict across machines: `cafa predict --shard i/N` scores one of N shards of a FASTA into a part file, and
`cafa merge-shards --out OUT` joins the N parts into the submission a single `cafa predict` writes, byte for byte.

Shard rule: contiguous blocks of the FASTA order. With n proteins, shard i (0 <= i < N) holds proteins
i*n//N .. (i+1)*n//N - 1 of the file (FASTA ids are unique, so a protein is in exactly one shard). The
single-process writer writes proteins in FASTA order, so joining the parts in shard order restores it.

Shard i of N with `--out OUT` writes `OUT.shard-i-of-N` (and `EVIDENCE.shard-i-of-N` with `--evidence`) plus
the manifest `OUT.shard-i-of-N.json`: the FASTA's sha256, i, N, the shard's protein count and first/last id,
the model and the part's sha256. The merge checks them (all N present once, one FASTA, one model, parts
unchanged) and stops with one line naming what is wrong.

Embeddings: when the whole FASTA's cache is complete under embed.out (`cafa embed --fasta F`, e.g. with
torchrun, or an earlier `cafa predict`), a shard reads its proteins' vectors from it; otherwise the model
embeds the shard's sequences itself (the same units, batching and float16 rounding as the cache)."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cafa_mlflow.errors import ConfigError, InputError
from cafa_mlflow.io.fasta import FastaRecord, load_fasta
from cafa_mlflow.io.integrity import digest
from cafa_mlflow.io.text import atomic_write, write_json
from cafa_mlflow.workflows.predict_batches import batches, join_files, prepare_model, score_frames

FORMAT = "cafa-predict-shard/1"
PART = re.compile(r"\.shard-(\d+)-of-(\d+)$")


def parse_shard(text: str) -> tuple[int, int]:
    """'i/N' -> (i, N) with 0 <= i < N; ConfigError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not int(match[1]) < int(match[2]):
        raise ConfigError(f"predict.shard={text!r}: expected i/N with 0 <= i < N, e.g. --shard 0/4 ... --shard 3/4.")
    return int(match[1]), int(match[2])


def shard_bounds(n: int, index: int, count: int) -> tuple[int, int]:
    """Positions [lo, hi) of shard `index` of `count` among n proteins (contiguous, sizes differ by at most 1)."""
    return n * index // count, n * (index + 1) // count


def part_path(out: str | Path, index: int, count: int) -> Path:
    return Path(f"{out}.shard-{index}-of-{count}")


def manifest_path(part: str | Path) -> Path:
    return Path(f"{part}.json")


def model_inputs(model: Any, records: list[FastaRecord], mine: list[FastaRecord], embed_out: str) -> tuple:
    """(vectors of `mine` or None, input columns) for a loaded GoModel: the vectors from the complete cache of
    all `records` when there is one, else the `sequence` column (the model embeds them)."""
    from cafa_mlflow.serving.pyfunc import required_inputs

    inputs = required_inputs(model)
    if "embedding" not in inputs:
        return None, inputs
    from cafa_mlflow.embed import load_embeddings
    from cafa_mlflow.embed.resolve import pooled_rows
    from cafa_mlflow.embed.runner import complete_cache

    settings = model.unwrap_python_model().settings
    found = complete_cache([r.id for r in records], [r.sequence for r in records], settings, embed_out)
    if found is None:
        return None, (inputs - {"embedding"}) | {"sequence"}
    return pooled_rows(load_embeddings(found), [r.id for r in mine], str(found)), inputs


@dataclass
class ShardResult:
    part: Path
    lines: int
    proteins: int  # proteins of the shard (scored or not)


def predict_shard(
    model: Any, fasta: str | Path, out: str | Path, params: Any, index: int, count: int, model_id: str
) -> ShardResult:
    """Score shard `index` of `count` of `fasta` into part_path(out) (+ evidence part) and its manifest."""
    cfg = params.predict
    records = load_fasta(fasta)
    lo, hi = shard_bounds(len(records), index, count)
    mine = records[lo:hi]
    prepare_model(model, records, cfg.threads)  # the whole FASTA: a shard scores as the single process does
    vectors, inputs = model_inputs(model, records, mine, params.embed.out)
    part = part_path(out, index, count)
    evidence = part_path(cfg.evidence, index, count) if cfg.evidence else None
    frames = batches(mine, vectors, inputs, max(cfg.batch_size, 1))
    lines = score_frames(model, frames, part, params.submission, evidence)
    manifest = {
        "format": FORMAT,
        "fasta": str(fasta),
        "fasta_sha256": digest(fasta),
        "fasta_proteins": len(records),
        "shard": index,
        "shards": count,
        "proteins": len(mine),
        "first": mine[0].id if mine else None,
        "last": mine[-1].id if mine else None,
        "model": model_id,
        "lines": lines,
        "part_sha256": digest(part),
        "evidence_sha256": digest(evidence) if evidence else None,
    }
    write_json(manifest_path(part), manifest)
    return ShardResult(part, lines, len(mine))


def find_parts(out: str | Path) -> list[Path]:
    """The part files `out.shard-i-of-N` beside `out`."""
    out = Path(out)
    return sorted(p for p in out.parent.glob(f"{out.name}.shard-*-of-*") if PART.search(p.name))


def read_manifests(parts: list[Path]) -> list[dict]:
    """The manifests of the parts, checked against each other: one N, one FASTA, one model, each shard once,
    none missing, parts unchanged; InputError (one line) naming the part otherwise."""
    manifests = []
    for part in parts:
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
        manifests.append({**manifest, "path": part})
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
    ordered = read_manifests(found)
    count = ordered[0]["shards"]
    if sum(m["proteins"] for m in ordered) != ordered[0]["fasta_proteins"]:
        raise InputError(
            f"{found[0]}: the shards hold {sum(m['proteins'] for m in ordered)} proteins, the FASTA has "
            f"{ordered[0]['fasta_proteins']}; run the shards again."
        )
    join_files([Path(m["path"]) for m in ordered], out)
    if evidence:
        evidence_parts = []
        for m in ordered:
            path = part_path(evidence, m["shard"], count)
            if m.get("evidence_sha256") is None or not path.is_file() or digest(path) != m["evidence_sha256"]:
                raise InputError(
                    f"{path}: missing or not the evidence shard {m['shard']} of {count} wrote; run "
                    f"`cafa predict --shard {m['shard']}/{count} --evidence {evidence}` again."
                )
            evidence_parts.append(path)
        join_evidence(evidence_parts, evidence)
    lines = sum(int(m["lines"]) for m in ordered)
    return MergeResult(Path(out), lines, count, ordered[0]["fasta_proteins"])


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


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="the submission to write (the --out the shards were given)")
    parser.add_argument("parts", nargs="*", help="part files (default: OUT.shard-*-of-* beside OUT)")
    parser.add_argument("--evidence", default=None, help="also join EVIDENCE.shard-i-of-N into EVIDENCE")


def run_merge(args: argparse.Namespace) -> int:
    """`cafa merge-shards`: join, then check the submission's rules."""
    from cafa_mlflow.io.submission import validate_submission

    result = merge_shards(args.out, args.parts, args.evidence)
    found = validate_submission(result.out)
    if found.counts:
        raise InputError(
            f"{result.out}: the merged submission breaks {sum(found.counts.values())} rules, e.g. {found[0]}."
        )
    print(f"submission: {result.out} ({found.n_proteins} proteins, {result.lines} lines) from {result.shards} shards")
    return 0
