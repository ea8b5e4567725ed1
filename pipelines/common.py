"""Flags from params.yaml: every leaf key of an entry point's sections is a flag of the same name.

`mlflow run . -e train -P loss=focal` passes `--loss focal` (MLproject declares no parameters, so
params.yaml stays the only home of defaults); `--esm-model` and `--esm_model` are the same flag."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from cafa_mlflow.config import load_params
from cafa_mlflow.errors import CafaError


def build_parser(
    prog: str, description: str, sections: Sequence[str], defaults: dict
) -> tuple[argparse.ArgumentParser, dict]:
    """A parser with one flag per leaf key of `sections` (first section wins a shared name; later
    ones are reachable as `section_key`). Returns (parser, dest -> dotted key)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--params", default=None, help="parameter file (default: params.yaml)")
    parser.add_argument(
        "--params-file",
        "--params_file",
        dest="params_file",
        default=None,
        help="YAML of keys that override params.yaml (e.g. tune's best_params.yaml)",
    )
    dotted: dict[str, str] = {}
    for section in sections:
        for key, value in defaults.get(section, {}).items():
            if isinstance(value, dict):
                continue
            name = key if key not in dotted else f"{section}_{key}"
            if name in dotted:
                continue
            dotted[name] = f"{section}.{key}"
            flags = {f"--{name.replace('_', '-')}", f"--{name}"}
            parser.add_argument(
                *sorted(flags),
                dest=name,
                default=None,
                metavar="VALUE" if value is None else type(value).__name__.upper(),
                help=f"{section}.{key} (params.yaml: {value!r})",
            )
    return parser, dotted


def parse_params(
    argv: Sequence[str] | None, prog: str, description: str, sections: Sequence[str]
) -> tuple[dict, argparse.Namespace]:
    """params.yaml + --params-file + flags -> (params dict, raw args). Empty strings count as not given."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--params", default=None)
    known, _ = pre.parse_known_args(argv)
    parser, dotted = build_parser(prog, description, sections, load_params(known.params))
    args = parser.parse_args(argv)
    overrides = {
        dotted[name]: value for name, value in vars(args).items() if name in dotted and value not in (None, "")
    }
    return load_params(args.params, overrides, args.params_file or None), args


def run_main(body: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run an entry point: user errors print one clear line and exit 2, no traceback."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        body(argv)
    except CafaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def run_step(name: str, params: dict, extra: Sequence[str] = ()) -> Any:
    """Run entry point `name` in-process with exactly these parameters (a nested run inside an active one)."""
    with tempfile.TemporaryDirectory() as tmp:
        resolved = Path(tmp) / "params.yaml"
        # tune's search space has dotted keys of its own; no other step reads the tune block
        resolved.write_text(yaml.safe_dump({k: v for k, v in params.items() if k != "tune"}))
        return importlib.import_module(f"pipelines.{name}").main(["--params-file", str(resolved), *extra])


def ensure_prepared(params: dict) -> None:
    """Run `prepare` first when its folder is missing, so any step works from a fresh clone."""
    if not (Path(params["prepare"]["out"]) / "summary.json").is_file():
        logging.getLogger(__name__).info("no prepared data in %s: running prepare first", params["prepare"]["out"])
        run_step("prepare", params)
