"""EmbedSettings: everything that decides the vectors of an embedding cache, as one value.

Runtime choices that do not change the vectors (device, token budget, shard size) are not part of it.
A saved predictor records the settings it was fitted on; using it with other settings is an error."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cafa_mlflow.embed.model import default_layer, model_identity, model_label, resolve_layer
from cafa_mlflow.embed.units import check_strategy
from cafa_mlflow.errors import ConfigError

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import EmbedParams


@dataclass(frozen=True)
class EmbedSettings:
    esm_model: str  # fair-esm name or local checkpoint path
    layer: int
    strategy: str
    window: int
    stride: int
    pooling: str
    precision: str
    max_residues: int

    def __post_init__(self) -> None:
        check_strategy(self.strategy, self.pooling, self.window, self.stride, self.max_residues)

    @classmethod
    def from_block(cls, block: EmbedParams | Mapping[str, Any]) -> EmbedSettings:
        """From params.yaml's embed block (an EmbedParams or a mapping)."""
        values = block.to_dict() if hasattr(block, "to_dict") else dict(block)
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EmbedSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"embedding settings: unknown key {unknown[0]!r}; expected {', '.join(sorted(names))}.")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def label(self) -> str:
        """How runs name the encoder: the fair-esm name, `tiny:<file>` or `local:<file>`."""
        return model_label(self.esm_model)

    def key(self, input_hash: str) -> dict[str, Any]:
        """The cache key of these settings over an input (window/stride only where the strategy uses them).

        The forward pass is not part of it: encoder.representations equals fair-esm's module to 1e-4 in fp32 and
        stays within bf16's own deviation under autocast (tests/test_encoder.py), so caches made by either hold
        the same vectors (float16 storage rounds more than they differ)."""
        last = default_layer(self.esm_model)
        return {
            "model": model_identity(self.esm_model),
            "layer": self.layer if last is None else resolve_layer(self.layer, last),
            "strategy": self.strategy,
            "window": self.window if self.strategy != "balanced" else None,
            "stride": self.stride if self.strategy == "sliding_window" else None,
            "pooling": self.pooling,
            "max_residues": self.max_residues,
            "precision": self.precision,
            "input_sha256": input_hash,
        }

    def same_vectors(self, other: EmbedSettings) -> bool:
        """Whether two settings give the same vectors (the same checkpoint under any path counts as equal)."""
        return self.key("") == other.key("")

    def require_same(self, other: EmbedSettings | None, what: str) -> None:
        """ConfigError naming both settings when `other` (e.g. a saved member's) differs from these."""
        if other is not None and not self.same_vectors(other):
            raise ConfigError(
                f"{what} was fitted on embeddings {other.describe()} but is used with {self.describe()}; "
                "use the settings it was fitted on (or refit it)."
            )

    def describe(self) -> str:
        return (
            f"[{self.label} layer={self.layer} strategy={self.strategy} pooling={self.pooling} "
            f"window={self.window} stride={self.stride} max_residues={self.max_residues} precision={self.precision}]"
        )
