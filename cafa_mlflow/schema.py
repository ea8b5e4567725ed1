"""One typed, frozen schema per params.yaml block; `Params` holds them all.

params.yaml owns every default: the dataclasses declare names, types and allowed values only. A block
with an unknown key, a missing key or a value of the wrong type is a ConfigError naming `block.key`."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from cafa_mlflow.errors import ConfigError


def choice(*allowed: Any) -> Any:
    """A field whose value must be one of `allowed`."""
    return field(metadata={"choices": allowed})


class Block:
    """Validation shared by every block: `from_dict` checks keys, types and choices."""

    section: ClassVar[str]

    @classmethod
    def from_dict(cls, values: typing.Mapping[str, Any]) -> Block:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(
                f"params.yaml {cls.section}.{unknown[0]}: unknown key; the {cls.section} block has {', '.join(names)}."
            )
        missing = [n for n in names if n not in values]
        if missing:
            raise ConfigError(f"params.yaml {cls.section}.{missing[0]}: missing; add it to params.yaml.")
        hints = typing.get_type_hints(cls)
        checked = {}
        for f in dataclasses.fields(cls):
            key = f"{cls.section}.{f.name}"
            value = _coerce(key, values[f.name], hints[f.name])
            allowed = f.metadata.get("choices")
            if allowed and value not in allowed:
                raise ConfigError(f"params.yaml {key}={value!r}: use one of {', '.join(map(str, allowed))}.")
            checked[f.name] = value
        return cls(**checked)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-safe values (tuples back to lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """`value` checked against a type hint (int -> float is allowed, bool is not an int)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for option in inner:
            try:
                return _coerce(key, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"params.yaml {key}={value!r}: expected {_type_name(hint)}.")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"params.yaml {key}={value!r}: expected a list.")
        return tuple(_coerce(key, v, args[0]) for v in value) if args else tuple(value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"params.yaml {key}={value!r}: expected a mapping.")
        return value
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise ConfigError(f"params.yaml {key}={value!r}: expected {_type_name(hint)}.")
    return value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


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
class ReferenceParams(Block):
    section: ClassVar[str] = "reference"
    use: str = choice("auto", "always", "never")
    databases: list[dict]
    evidence: str | list[str]
    sensitivity: str = choice(
        "fast", "default", "mid-sensitive", "sensitive", "more-sensitive", "very-sensitive", "ultra-sensitive"
    )
    evalue: float
    max_target_seqs: int
    threads: int
    exclude: str = choice("queries", "self", "none")
    holdout_max_identity: float
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
    max_target_seqs: int
    max_iter: int
    learning_rate: float
    max_leaf_nodes: int
    min_samples_leaf: int
    l2_regularization: float
    neg_fraction: float
    max_rows: int
    ia_weight_floor: float | None
    seed: int


def _train_params() -> type[Block]:
    from cafa_mlflow.predictors.neural.params import TrainParams  # the neural predictor's own schema

    return TrainParams


BLOCKS: dict[str, Any] = {
    "data": DataParams,
    "prepare": PrepareParams,
    "outputs": OutputsParams,
    "submission": SubmissionParams,
    "tracking": TrackingParams,
    "embed": EmbedParams,
    "train": _train_params,
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
    cls = BLOCKS[section]
    return cls if isinstance(cls, type) else cls()


@dataclass(frozen=True)
class Params:
    """Every block of params.yaml, validated. `raw` is the nested dict they came from."""

    data: DataParams
    prepare: PrepareParams
    outputs: OutputsParams
    submission: SubmissionParams
    tracking: TrackingParams
    embed: EmbedParams
    train: Any
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
        return cls(**blocks, raw=dict(raw))

    def block(self, section: str) -> Block:
        return getattr(self, section)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: self.block(name).to_dict() for name in BLOCKS}

    def with_overrides(self, overrides: typing.Mapping[str, Any]) -> Params:
        """A copy with dotted keys set (values parsed as on the command line), validated again."""
        from cafa_mlflow.config import block_keys, set_dotted

        raw = self.to_dict()
        for key, value in block_keys(overrides).items():
            set_dotted(raw, key, value)
        return Params.from_dict(raw)
