"""One typed, frozen schema per params.yaml block; `Params` holds them all.

params.yaml owns every default: the dataclasses declare names, types, allowed values (`choice`) and numeric
ranges (`bounds`) only. A block with an unknown key, a missing key, a value of the wrong type or out of its
range is a ConfigError naming `block.key` (its `key` attribute), raised before any work starts."""

from __future__ import annotations

import dataclasses
import operator
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from cafa_mlflow.errors import ConfigError


def choice(*allowed: Any) -> Any:
    """A field whose value must be one of `allowed`."""
    return field(metadata={"choices": allowed})


def bounds(ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None) -> Any:
    """A numeric field's range (None of them: any number, declared on purpose); None values and the
    strings a union type allows (e.g. 'auto') are not numbers and pass."""
    return field(
        metadata={"range": {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}}
    )


_RANGE = {"ge": (">=", operator.ge), "gt": (">", operator.gt), "le": ("<=", operator.le), "lt": ("<", operator.lt)}


def config_error(key: str, text: str) -> ConfigError:
    """ConfigError `params.yaml <key><text>` that remembers its key (config.validate names the true source)."""
    err = ConfigError(f"params.yaml {key}{text}")
    err.key = key
    return err


def check_range(key: str, value: Any, limits: dict) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if value != value or not all(_RANGE[k][1](value, bound) for k, bound in limits.items()):
        rule = " and ".join(f"{_RANGE[k][0]} {bound}" for k, bound in limits.items())
        raise config_error(key, f"={value!r}: out of range; use a value {rule}.")


class Block:
    """Validation shared by every block: `from_dict` checks keys, types and choices."""

    section: ClassVar[str]

    @classmethod
    def from_dict(cls, values: typing.Mapping[str, Any]) -> Block:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise config_error(
                f"{cls.section}.{unknown[0]}", f": unknown key; the {cls.section} block has {', '.join(names)}."
            )
        missing = [n for n in names if n not in values]
        if missing:
            raise config_error(f"{cls.section}.{missing[0]}", ": missing; add it to params.yaml.")
        hints = typing.get_type_hints(cls)
        checked = {}
        for f in dataclasses.fields(cls):
            key = f"{cls.section}.{f.name}"
            try:
                value = _coerce(key, values[f.name], hints[f.name])
            except ConfigError as err:
                err.key = key
                raise
            allowed = f.metadata.get("choices")
            if allowed and value not in allowed:
                raise config_error(key, f"={value!r}: use one of {', '.join(map(str, allowed))}.")
            check_range(key, value, f.metadata.get("range", {}))
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
    hyperband_max_resource: int | str = bounds(ge=1)
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
    members: list[str]
    method: str = choice("blend", "stacker")
    step: float = bounds(gt=0, le=1)
    search: str = choice("auto", "grid", "coordinate")
    max_grid_points: int = bounds(ge=1)
    threshold_step: float = bounds(gt=0, lt=1)
    fit_on: str = choice("oof", "val")
    fit_proteins: int = bounds(ge=0)


@dataclass(frozen=True)
class PredictParams(Block):
    section: ClassVar[str] = "predict"
    fasta: str | None
    out: str
    model_uri: str | None
    batch_size: int = bounds(ge=1)
    threads: int = bounds(ge=0)


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
    full_fit: bool


@dataclass(frozen=True)
class StackerParams(Block):
    section: ClassVar[str] = "stacker"
    member_floor: float = bounds(ge=0, le=1)
    naive_floor: float = bounds(ge=0, le=1)
    max_target_seqs: int = bounds(ge=0)
    max_iter: int = bounds(ge=1)
    learning_rate: float = bounds(gt=0)
    max_leaf_nodes: int = bounds(ge=2)
    min_samples_leaf: int = bounds(ge=1)
    l2_regularization: float = bounds(ge=0)
    neg_fraction: float = bounds(gt=0, le=1)
    max_rows: int = bounds(ge=1)
    ia_weight_floor: float | None = bounds(ge=0)
    seed: int = bounds(ge=0)


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
        from cafa_mlflow.config import block_keys, set_dotted

        raw = self.to_dict()
        for key, value in block_keys(overrides).items():
            set_dotted(raw, key, value)
        return Params.from_dict(raw)
