"""The base of every params.yaml block: `Block.from_dict` checks keys, types and allowed values.

params.yaml owns every default: blocks declare names, types and allowed values only. A block with an unknown
key, a missing key or a value of the wrong type is a ConfigError naming `block.key`."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field
from typing import Any, ClassVar, Union

from cafa_mlflow.config.loading import parse_value
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
        block = cls(**checked)
        block.validate()
        return block

    def validate(self) -> None:
        """Checks across values (ranges); a block that has some overrides this."""

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
    if hint in (int, float, bool) and isinstance(value, str):  # a number as text: YAML 1.1 reads 1e-4 as a string
        value = parse_value(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise ConfigError(f"params.yaml {key}={value!r}: expected {_type_name(hint)}.")
    return value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
