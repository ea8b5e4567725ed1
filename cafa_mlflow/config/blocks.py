"""The base of every params.yaml block: `Block.from_dict` checks keys, types, allowed values (`choice`, also
each item of a list, and the words a numeric field accepts: `bounds(words=...)`), the keys and allowed values
of each mapping of a list (`entries`) and numeric ranges (`bounds`). An unknown value is refused when the
parameters are read, whatever the step or `use:` setting, with the allowed values named.

params.yaml owns every default: blocks declare names, types, allowed values and ranges only. A block with an
unknown key, a missing key, a value of the wrong type or out of its range is a ConfigError naming `block.key`
(its `key` attribute, which `schema.validate` turns into the file and line the value came from)."""

from __future__ import annotations

import dataclasses
import operator
import types
import typing
from dataclasses import field
from typing import Any, ClassVar, Union

from cafa_mlflow.config.params_file import parse_value
from cafa_mlflow.errors import ConfigError


def choice(*allowed: Any, any_case: bool = False) -> Any:
    """A field whose value (each item, for a list) must be one of `allowed`; `any_case`: also in another case
    (GO evidence codes: `iea` is IEA)."""
    return field(metadata={"choices": allowed, "any_case": any_case})


def entries(
    keys: tuple[str, ...], required: tuple[str, ...] = (), any_case: tuple[str, ...] = (), **allowed: tuple[Any, ...]
) -> Any:
    """A list of mappings (e.g. reference.databases) whose keys must be among `keys` (those in `required` always
    there) and whose values for the keys named in `allowed` must be one of those values (in any case for the
    keys named in `any_case`)."""
    spec = {"keys": keys, "required": required, "any_case": any_case, "choices": allowed}
    return field(metadata={"entries": spec})


def bounds(
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    words: tuple[str, ...] = (),
) -> Any:
    """A numeric field's range (None of them: any number, declared on purpose); None values pass, and a string
    (a union type such as `int | str`) must be one of `words` (e.g. 'auto')."""
    limits = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    return field(metadata={"range": limits, **({"choices": words, "any_case": False} if words else {})})


_RANGE = {"ge": (">=", operator.ge), "gt": (">", operator.gt), "le": ("<=", operator.le), "lt": ("<", operator.lt)}


def config_error(key: str, text: str) -> ConfigError:
    """ConfigError `params.yaml <key><text>` that remembers its key (config.validate names the true source)."""
    err = ConfigError(f"params.yaml {key}{text}")
    err.key = key
    return err


def check_choice(key: str, value: Any, allowed: tuple, any_case: bool = False, numbers: bool = False) -> None:
    """ConfigError naming `key`, the value and the allowed ones, unless `value` (each item of a list) is one of
    `allowed`; None passes (the type said whether it may be None), and so do numbers when the field also has a
    range (`numbers`: `bounds(words=...)`)."""
    for item in value if isinstance(value, (list, tuple)) else (value,):
        if item is None or (numbers and isinstance(item, (int, float)) and not isinstance(item, bool)):
            continue
        if item in allowed or (any_case and isinstance(item, str) and item.upper() in allowed):
            continue
        number = "a number in the range above or " if numbers else ""
        raise config_error(key, f"={item!r}: use {number}one of {', '.join(map(str, allowed))}.")


def check_entries(key: str, value: Any, spec: dict) -> None:
    """Each mapping of the list `value` against `entries`' spec: known keys, required keys, allowed values."""
    keys = ", ".join(spec["keys"])
    for i, entry in enumerate(value or ()):
        if not isinstance(entry, dict):
            raise config_error(key, f"[{i}]={entry!r}: expected a mapping with keys among {keys}.")
        unknown = sorted(set(entry) - set(spec["keys"]))
        if unknown:
            raise config_error(key, f"[{i}].{unknown[0]}: unknown key; an entry has {keys}.")
        missing = [name for name in spec["required"] if name not in entry]
        if missing:
            raise config_error(key, f"[{i}].{missing[0]}: missing; every entry names its {missing[0]}.")
        for name, choices in spec["choices"].items():
            if name in entry:
                check_choice(f"{key}[{i}].{name}", entry[name], choices, any_case=name in spec["any_case"])


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
            meta = f.metadata
            if meta.get("choices"):
                check_choice(key, value, meta["choices"], meta["any_case"], numbers="range" in meta)
            if "entries" in meta:
                check_entries(key, value, meta["entries"])
            check_range(key, value, meta.get("range", {}))
            checked[f.name] = value
        block = cls(**checked)
        block.validate()
        return block

    def validate(self) -> None:
        """Checks across values; a block that has some overrides this (ranges of single values: `bounds`)."""

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
