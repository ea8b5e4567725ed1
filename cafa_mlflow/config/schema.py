"""One typed, frozen schema per params.yaml block; `Params` holds them all (the train block is in train.py).

Blocks describe values only: nothing here imports the code that uses them (no torch, no MLflow)."""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cafa_mlflow.config.blocks import Block, choice
from cafa_mlflow.config.loading import block_keys, load_params, set_dotted
from cafa_mlflow.config.train import TrainParams
from cafa_mlflow.errors import ConfigError


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
    subsample: int
    test_subsample: int
    min_count: int
    top_k: int
    val_fraction: float
    split: str = choice("homology", "random")
    split_min_identity: float
    split_max_evalue: float
    seed: int


@dataclass(frozen=True)
class OutputsParams(Block):
    section: ClassVar[str] = "outputs"
    predictions: str
    metrics: str


@dataclass(frozen=True)
class SubmissionParams(Block):
    section: ClassVar[str] = "submission"
    max_terms: int
    sig: int
    min_score: float


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
    layer: int
    strategy: str = choice("balanced", "sliding_window", "chunks")
    max_residues: int
    window: int
    stride: int
    pooling: str = choice("mean", "max", "cls")
    toks_per_batch: int
    precision: str = choice("fp32", "bf16", "fp16")
    device: str = choice("auto", "cpu", "cuda")
    shard_size: int
    out: str


@dataclass(frozen=True)
class TuneParams(Block):
    section: ClassVar[str] = "tune"
    objective: str = choice("train", "ensemble")
    study_name: str
    storage: str
    n_trials: int
    timeout: float | None
    metric: str
    direction: str = choice("maximize", "minimize")
    sampler_seed: int | None
    startup_trials: int
    pruner: str = choice("median", "hyperband", "none")
    median_startup_trials: int
    median_warmup_steps: int
    hyperband_min_resource: int
    hyperband_max_resource: int | str
    hyperband_reduction_factor: int
    heartbeat_interval: int | None
    retrain_best: bool
    out: str
    space: dict


@dataclass(frozen=True)
class NaiveParams(Block):
    section: ClassVar[str] = "naive"
    denominator: str = choice("aspect", "all")
    min_score: float
    top_k: int


@dataclass(frozen=True)
class HomologyParams(Block):
    section: ClassVar[str] = "homology"
    sensitivity: str = choice(
        "fast", "default", "mid-sensitive", "sensitive", "more-sensitive", "very-sensitive", "ultra-sensitive"
    )
    evalue: float
    max_target_seqs: int
    threads: int
    exclude_self: bool
    executable: str
    out: str


@dataclass(frozen=True)
class KnnParams(Block):
    section: ClassVar[str] = "knn"
    k: int
    block_size: int
    exclude_self: bool


@dataclass(frozen=True)
class EnsembleParams(Block):
    section: ClassVar[str] = "ensemble"
    members: list[str]
    method: str = choice("blend", "stacker")
    step: float
    search: str = choice("auto", "grid", "coordinate")
    max_grid_points: int
    threshold_step: float
    fit_on: str = choice("oof", "val")
    fit_proteins: int


@dataclass(frozen=True)
class PredictParams(Block):
    section: ClassVar[str] = "predict"
    fasta: str | None
    out: str
    model_uri: str | None
    batch_size: int
    threads: int
    evidence: str | None = None


@dataclass(frozen=True)
class EvaluateParams(Block):
    section: ClassVar[str] = "evaluate"
    obo: str | None
    truth: str | None
    pred: str | None
    ia: str | None
    threshold_step: float
    out_json: str


@dataclass(frozen=True)
class FoldsParams(Block):
    section: ClassVar[str] = "folds"
    k: int
    seed: int
    full_fit: bool


@dataclass(frozen=True)
class StackerParams(Block):
    section: ClassVar[str] = "stacker"
    member_floor: float
    naive_floor: float
    max_iter: int
    learning_rate: float
    max_leaf_nodes: int
    min_samples_leaf: int
    l2_regularization: float
    neg_fraction: float
    max_rows: int
    ia_weight_floor: float | None
    seed: int


BLOCKS: dict[str, Any] = {
    "data": DataParams,
    "prepare": PrepareParams,
    "outputs": OutputsParams,
    "submission": SubmissionParams,
    "tracking": TrackingParams,
    "embed": EmbedParams,
    "train": TrainParams,
    "tune": TuneParams,
    "naive": NaiveParams,
    "homology": HomologyParams,
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
    tracking: TrackingParams
    embed: EmbedParams
    train: TrainParams
    tune: TuneParams
    naive: NaiveParams
    homology: HomologyParams
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
        return cls(**blocks, raw=dict(raw))

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


def load_config(
    path: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    params_file: str | os.PathLike | None = None,
) -> Params:
    """`load_params`, validated into the typed schema (schema.Params)."""
    return Params.from_dict(load_params(path, overrides, params_file))
