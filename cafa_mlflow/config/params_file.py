"""params.yaml is the single source of defaults; callers override single keys by dotted name."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cafa_mlflow.errors import ConfigError

PARAMS_FILE = "params.yaml"


def find_params_file(path: str | os.PathLike | None = None) -> Path:
    """`path`, else $CAFA_PARAMS, else params.yaml in the working directory or the repository root."""
    candidates = [
        path,
        os.environ.get("CAFA_PARAMS"),
        PARAMS_FILE,
        Path(__file__).resolve().parents[2] / PARAMS_FILE,  # the repository root
    ]
    for cand in candidates:
        if cand and Path(cand).is_file():
            return Path(cand)
    raise ConfigError(
        f"{path or PARAMS_FILE}: parameter file not found; run from the repository root or set CAFA_PARAMS."
    )


def read_yaml(path: str | os.PathLike, lines: dict[str, str] | None = None) -> dict:
    """A parameter file as a mapping. A syntax error is a ConfigError naming the file, line and column and
    what to do (no traceback); `lines`, when given, receives {dotted key: "file:line"} for error messages."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        tree = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        context = err.context or ""
        if context and err.context_mark and mark and err.context_mark.line != mark.line:
            context += f" (begun on line {err.context_mark.line + 1}):"
        what = " ".join(f"{context} {err.problem or ''}".split())
        raise ConfigError(
            f"{where}: YAML syntax error ({what}); fix that line: indent with spaces, write `key: value`, "
            "quote values holding ':' or '#'."
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())}); fix the file.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the parameter file ({err}); check the path.") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}:1: expected a mapping of blocks (e.g. `train:` with indented keys below).")
    if lines is not None and isinstance(node, yaml.MappingNode):
        _key_lines(node, str(path), "", lines)
    return tree


def _key_lines(node: yaml.MappingNode, path: str, prefix: str, lines: dict[str, str]) -> None:
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        lines[key] = f"{path}:{key_node.start_mark.line + 1}"
        if isinstance(value_node, yaml.MappingNode) and not prefix:  # blocks are one level deep
            _key_lines(value_node, path, key + ".", lines)


def parse_value(text: Any) -> Any:
    """'0.1' -> 0.1, '1e-4' -> 0.0001, 'true' -> True, 'null' -> None, '[64, 32]' -> [64, 32]; other strings unchanged."""
    if not isinstance(text, str):
        return text
    try:
        value = yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML 1.1 reads '1e-4' (no dot) as a string; it is a number on a command line
        try:
            return float(value)
        except ValueError:
            return value
    return value


def set_dotted(params: dict, key: str, value: Any) -> None:
    section, *rest = key.split(".")
    node = params
    for part in [section, *rest][:-1]:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"unknown parameter {key!r}: {part!r} is not a section of params.yaml.")
        node = node[part]
    leaf = key.split(".")[-1]
    if leaf not in node:
        raise ConfigError(f"unknown parameter {key!r}; see params.yaml for the valid names.")
    node[leaf] = parse_value(value)


def read_params(path: str | os.PathLike | None = None, lines: dict[str, str] | None = None) -> dict:
    """The parameter file (see `find_params_file`) as a nested dict; `lines` as in `read_yaml`."""
    return read_yaml(find_params_file(path), lines)


def load_params(
    path: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    params_file: str | os.PathLike | None = None,
    sources: dict[str, str] | None = None,
    raw: tuple[dict, dict[str, str]] | None = None,
) -> dict:
    """Defaults from params.yaml (or `raw` = (tree, lines) from `read_params`, when it was read already), then
    keys from `params_file` (e.g. tune's best trial), then `overrides`.

    `params_file` holds a nested mapping or flat dotted keys; `overrides` maps dotted keys to values
    (strings are parsed as YAML scalars). None values in `overrides` are skipped (flag not given).
    `sources`, when given, receives where each key's value came from ("file:line" or "command line")."""
    if raw is None:
        lines: dict[str, str] = {}
        params = read_params(path, lines)
    else:
        params, lines = copy.deepcopy(raw[0]), dict(raw[1])
    merged: dict[str, Any] = {}
    if params_file:
        if not Path(params_file).is_file():
            raise ConfigError(f"{params_file}: parameter file not found.")
        merged.update(block_keys(read_yaml(params_file, lines)))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    merged.update(given)
    lines.update({k: "command line" for k in given})
    if sources is not None:
        sources.update(lines)
    for key, value in merged.items():
        set_dotted(params, key, value)
    return params


def block_keys(tree: Mapping) -> dict[str, Any]:
    """A params file's {'train': {'lr': 1}} -> {'train.lr': 1}: blocks are one level deep, so a mapping under
    block.key (tune.space) is that key's whole value; flat dotted keys pass through."""
    return {
        (f"{block}.{key}" if isinstance(keys, Mapping) else block): value
        for block, keys in tree.items()
        for key, value in (keys.items() if isinstance(keys, Mapping) else [(None, keys)])
    }


def flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 1}} -> {'train.lr': 1}; flat dotted keys pass through."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
