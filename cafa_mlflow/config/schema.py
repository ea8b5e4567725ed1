"""One typed, frozen schema per params.yaml block; `Params` holds them all (the train block is in train.py).

Blocks describe values only (types, choices, ranges): nothing here imports the code that uses them (no torch, no
MLflow). `load_config` reads, merges and validates; an error names the file and line a value came from."""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cafa_mlflow.config.blocks import Block, bounds, choice, config_error, entries
from cafa_mlflow.config.params_file import block_keys, load_params, set_dotted
from cafa_mlflow.config.train_params import TrainParams
from cafa_mlflow.errors import ConfigError

# The allowed values of enum-like keys that nested lists or other packages also use (the readers import them
# from here, so a value is refused when params.yaml is read, never first met deep inside a step).
MEMBERS = ("naive", "homology", "reference", "knn", "neural")  # predictors.registry.MEMBER_KINDS (a test checks)
DATABASE_FORMATS = ("uniprot", "gaf", "cafa", "metastudent")  # reference.databases[].format (io.reference_formats)
DATABASE_KEYS = ("format", "path", "fasta", "terms", "evidence")
# GO evidence codes by group (geneontology.org/docs/guide-go-evidence-codes); `experimental` is CAFA's set
# (experimental and high-throughput codes plus TAS and IC).
EVIDENCE_GROUPS = {
    "experimental": ("EXP", "IDA", "IPI", "IMP", "IGI", "IEP", "HTP", "HDA", "HMP", "HGI", "HEP", "TAS", "IC"),
    "phylogenetic": ("IBA", "IBD", "IKR", "IRD"),
    "computational": ("ISS", "ISO", "ISA", "ISM", "IGC", "RCA"),
    "author": ("TAS", "NAS", "IC", "ND"),
    "electronic": ("IEA",),
}
EVIDENCE_CODES = tuple(dict.fromkeys(c for codes in EVIDENCE_GROUPS.values() for c in codes))
EVIDENCE_FILTERS = ("all", *EVIDENCE_GROUPS, *EVIDENCE_CODES)  # reference.evidence: a name or a list of them


@dataclass(frozen=True)
class DataParams(Block):
    section: ClassVar[str] = "data"
    obo: str
    train_fasta: str
    train_terms: str
    train_taxonomy: str | None
    test_fasta: str | None
    test_terms: str | None
    ia: str | None


@dataclass(frozen=True)
class PrepareParams(Block):
    section: ClassVar[str] = "prepare"
    out: str
    subsample: int = bounds(ge=0)
    test_subsample: int = bounds(ge=0)
    min_count: int = bounds(ge=0)
    top_k: int = bounds(ge=0)
    val_fraction: float = bounds(ge=0, lt=1)
    split: str = choice("homology", "random")
    split_min_identity: float = bounds(gt=0, le=100)
    split_max_evalue: float = bounds(gt=0)
    seed: int = bounds(ge=0)


@dataclass(frozen=True)
class OutputsParams(Block):
    section: ClassVar[str] = "outputs"
    predictions: str
    metrics: str


@dataclass(frozen=True)
class SubmissionParams(Block):
    section: ClassVar[str] = "submission"
    max_terms: int = bounds(ge=1)
    sig: int = bounds(ge=1)
    min_score: float = bounds(ge=0, lt=1)


@dataclass(frozen=True)
class ServingParams(Block):
    """Per-request limits of the served model (`mlflow models serve`): larger requests are refused before any work."""

    section: ClassVar[str] = "serving"
    max_proteins: int = bounds(ge=1)
    max_residues: int = bounds(ge=1)


@dataclass(frozen=True)
class TrackingParams(Block):
    section: ClassVar[str] = "tracking"
    uri: str
    experiment: str
    registered_model: str
    system_metrics: bool


@dataclass(frozen=True)
class EmbedParams(Block):
    section: ClassVar[str] = "embed"
    fasta: str | None
    esm_model: str
    layer: int = bounds()
    strategy: str = choice("balanced", "sliding_window", "chunks")
    max_residues: int = bounds(ge=1)
    window: int = bounds(ge=1)
    stride: int = bounds(ge=0)
    pooling: str = choice("mean", "max", "cls")
    toks_per_batch: int = bounds(ge=3)
    precision: str = choice("fp32", "bf16", "fp16")
    device: str = choice("auto", "cpu", "cuda")
    shard_size: int = bounds(ge=1)
    out: str


@dataclass(frozen=True)
class TuneParams(Block):
    section: ClassVar[str] = "tune"
    objective: str = choice("train", "ensemble")
    study_name: str
    storage: str
    n_trials: int = bounds(ge=1)
    timeout: float | None = bounds(gt=0)
    metric: str
    direction: str = choice("maximize", "minimize")
    sampler_seed: int | None = bounds(ge=0)
    startup_trials: int = bounds(ge=0)
    pruner: str = choice("median", "hyperband", "none")
    median_startup_trials: int = bounds(ge=0)
    median_warmup_steps: int = bounds(ge=0)
    hyperband_min_resource: int = bounds(ge=1)
    hyperband_max_resource: int | str = bounds(ge=1, words=("auto",))
    hyperband_reduction_factor: int = bounds(ge=2)
    heartbeat_interval: int | None = bounds(ge=1)
    retrain_best: bool
    out: str
    space: dict


@dataclass(frozen=True)
class NaiveParams(Block):
    section: ClassVar[str] = "naive"
    denominator: str = choice("aspect", "all")
    min_score: float = bounds(ge=0, le=1)
    top_k: int = bounds(ge=0)


@dataclass(frozen=True)
class HomologyParams(Block):
    section: ClassVar[str] = "homology"
    sensitivity: str = choice(
        "fast", "default", "mid-sensitive", "sensitive", "more-sensitive", "very-sensitive", "ultra-sensitive"
    )
    evalue: float = bounds(gt=0)
    max_target_seqs: int = bounds(ge=0)
    threads: int = bounds(ge=0)
    exclude_self: bool
    executable: str
    engine: str = choice("diamond", "mmseqs2")
    mmseqs_sensitivity: float = bounds(ge=1, le=7.5)
    mmseqs_max_seqs: int = bounds(ge=1)
    mmseqs_executable: str
    out: str


@dataclass(frozen=True)
class ReferenceParams(Block):
    section: ClassVar[str] = "reference"
    use: str = choice("auto", "always", "never")
    databases: list[dict] = entries(
        DATABASE_KEYS, required=("format",), any_case=("evidence",), format=DATABASE_FORMATS, evidence=EVIDENCE_CODES
    )
    evidence: str | list[str] = choice(*EVIDENCE_FILTERS, any_case=True)
    sensitivity: str = choice(
        "fast", "default", "mid-sensitive", "sensitive", "more-sensitive", "very-sensitive", "ultra-sensitive"
    )
    evalue: float = bounds(gt=0)
    max_target_seqs: int = bounds(ge=0)
    threads: int = bounds(ge=0)
    exclude: str = choice("queries", "self", "none")
    holdout_max_identity: float = bounds(gt=0, le=100)
    holdout_own_terms: str = choice("vote", "drop_direct", "drop_propagated")
    near_identity: float = bounds(ge=0, le=100)
    near_identity_coverage: float = bounds(ge=0, le=100)
    id_map: str | None
    executable: str
    engine: str = choice("diamond", "mmseqs2")
    mmseqs_sensitivity: float = bounds(ge=1, le=7.5)
    mmseqs_max_seqs: int = bounds(ge=1)
    mmseqs_executable: str
    out: str


@dataclass(frozen=True)
class KnnParams(Block):
    section: ClassVar[str] = "knn"
    k: int = bounds(ge=1)
    block_size: int = bounds(ge=1)
    exclude_self: bool


@dataclass(frozen=True)
class EnsembleParams(Block):
    section: ClassVar[str] = "ensemble"
    members: list[str] = choice(*MEMBERS)
    method: str = choice("blend", "stacker", "learned")
    step: float = bounds(gt=0, le=1)
    search: str = choice("auto", "grid", "coordinate", "line")
    max_grid_points: int = bounds(ge=1)
    threshold_step: float = bounds(gt=0, lt=1)
    fit_on: str = choice("oof", "val")
    rescale: str = choice("auto", "never")


@dataclass(frozen=True)
class PredictParams(Block):
    section: ClassVar[str] = "predict"
    fasta: str | None
    out: str
    model_uri: str | None
    batch_size: int = bounds(ge=1)
    threads: int = bounds(ge=0)
    evidence: str | None
    shard: str | None
    engine: str = choice("local", "ray")
    ray_address: str | None
    ray_connect_timeout_s: float = bounds(gt=0)
    workers: int | None = bounds(ge=1)
    reuse: bool


@dataclass(frozen=True)
class EvaluateParams(Block):
    section: ClassVar[str] = "evaluate"
    obo: str | None
    truth: str | None
    pred: str | None
    ia: str | None
    threshold_step: float = bounds(gt=0, lt=1)
    out_json: str


@dataclass(frozen=True)
class FoldsParams(Block):
    section: ClassVar[str] = "folds"
    k: int = bounds(ge=0)
    seed: int = bounds(ge=0)
    oof_proteins: int = bounds(ge=0)
    full_fit: bool


@dataclass(frozen=True)
class StackerParams(Block):
    section: ClassVar[str] = "stacker"
    member_floor: float = bounds(ge=0, le=1)
    naive_floor: float = bounds(ge=0, le=1)
    max_iter: int = bounds(ge=1)
    learning_rate: float = bounds(gt=0)
    max_leaf_nodes: int = bounds(ge=2)
    min_samples_leaf: int = bounds(ge=1)
    l2_regularization: float = bounds(ge=0)
    neg_fraction: float = bounds(gt=0, le=1)
    max_rows: int = bounds(ge=1)
    ia_weight_floor: float | None = bounds(ge=0)
    seed: int = bounds(ge=0)
    importance_pairs: int = bounds(ge=0)
    importance_repeats: int = bounds(ge=1)


BLOCKS: dict[str, Any] = {
    "data": DataParams,
    "prepare": PrepareParams,
    "outputs": OutputsParams,
    "submission": SubmissionParams,
    "serving": ServingParams,
    "tracking": TrackingParams,
    "embed": EmbedParams,
    "train": TrainParams,
    "tune": TuneParams,
    "naive": NaiveParams,
    "homology": HomologyParams,
    "reference": ReferenceParams,
    "knn": KnnParams,
    "ensemble": EnsembleParams,
    "predict": PredictParams,
    "evaluate": EvaluateParams,
    "folds": FoldsParams,
    "stacker": StackerParams,
}


def block_class(section: str) -> type[Block]:
    if section not in BLOCKS:
        raise ConfigError(f"params.yaml: {section!r} is not a block; blocks are {', '.join(BLOCKS)}.")
    return BLOCKS[section]


@dataclass(frozen=True)
class Params:
    """Every block of params.yaml, validated. `raw` is the nested dict they came from."""

    data: DataParams
    prepare: PrepareParams
    outputs: OutputsParams
    submission: SubmissionParams
    serving: ServingParams
    tracking: TrackingParams
    embed: EmbedParams
    train: TrainParams
    tune: TuneParams
    naive: NaiveParams
    homology: HomologyParams
    reference: ReferenceParams
    knn: KnnParams
    ensemble: EnsembleParams
    predict: PredictParams
    evaluate: EvaluateParams
    folds: FoldsParams
    stacker: StackerParams
    raw: dict = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_dict(cls, raw: typing.Mapping[str, Any]) -> Params:
        unknown = sorted(set(raw) - set(BLOCKS))
        if unknown:
            raise ConfigError(f"params.yaml: {unknown[0]!r} is not a block; blocks are {', '.join(BLOCKS)}.")
        missing = [name for name in BLOCKS if name not in raw]
        if missing:
            raise ConfigError(f"params.yaml: the {missing[0]!r} block is missing.")
        blocks = {name: block_class(name).from_dict(raw[name] or {}) for name in BLOCKS}
        if blocks["folds"].k == 1:
            raise config_error("folds.k", "=1: one fold holds no protein out; use 0 (no cross-fitting) or >= 2.")
        return cls(**blocks, raw=dict(raw))

    def require_oof(self) -> None:
        """ConfigError before any work when the ensemble learns from out-of-fold predictions (fit_on: oof)
        but folds.k < 2 writes none."""
        if self.ensemble.fit_on == "oof" and self.folds.k < 2:
            raise config_error(
                "folds.k",
                f"={self.folds.k}: ensemble.fit_on=oof needs the members' out-of-fold predictions; set folds.k "
                ">= 2 (and re-run the members), or ensemble.fit_on: val.",
            )

    def block(self, section: str) -> Block:
        return getattr(self, section)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: self.block(name).to_dict() for name in BLOCKS}

    def with_overrides(self, overrides: typing.Mapping[str, Any]) -> Params:
        """A copy with dotted keys set (values parsed as on the command line), validated again."""
        raw = self.to_dict()
        for key, value in block_keys(overrides).items():
            set_dotted(raw, key, value)
        return Params.from_dict(raw)


def validate(raw: Mapping, sources: Mapping[str, str] | None = None) -> Params:
    """`raw` validated into Params; an error about a key names the file and line (or the command line) the
    value came from."""
    try:
        return Params.from_dict(raw)
    except ConfigError as err:
        key = getattr(err, "key", None)
        where = (sources or {}).get(key) or (sources or {}).get(str(key).split(".")[0])
        if where and str(err).startswith("params.yaml "):
            raise ConfigError(f"{where}: {str(err)[len('params.yaml ') :]}") from None
        raise


def load_config(
    path: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    params_file: str | os.PathLike | None = None,
) -> Params:
    """`load_params`, validated into the typed schema (Params)."""
    sources: dict[str, str] = {}
    return validate(load_params(path, overrides, params_file, sources), sources)
