"""Every `cafa ...` and `mlflow run ...` example in README.md (fenced blocks and inline code) parses: the
command exists and each flag or `-P key=value` names a params.yaml key that command takes, so no example
goes stale when a key moves."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest

from cafa_mlflow.config.flags import build_parser, flag_table
from cafa_mlflow.config.loading import read_params
from pipelines.cli import ENTRY_POINTS, UTILITIES

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
# examples the README shows on purpose as refused (the message they get is the point)
REFUSED = {"cafa train --esm-model X"}
# MLproject entry point -> the params.yaml block that takes short flags (members: their own block)
MLPROJECT_OWN = {"main": None, "naive": "naive", "homology": "homology", "knn": "knn"}


def examples(text: str) -> list[str]:
    """Commands in fenced blocks (with `\\` continuations, comments dropped) and in inline code spans."""
    found = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip().removesuffix("&").strip()  # `&`: a background worker
            if line.startswith(("cafa ", "mlflow run ")):
                found.append(line)
    for span in re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)):
        if span.startswith(("cafa ", "mlflow run ")) and "<" not in span and span not in REFUSED:
            found.append(span)
    return sorted(set(found))


EXAMPLES = examples(README.read_text())


def test_readme_has_examples_of_both_kinds():
    assert sum(e.startswith("cafa ") for e in EXAMPLES) >= 15
    assert sum(e.startswith("mlflow run ") for e in EXAMPLES) >= 8


def _check_entry(command: str, own: str | None, flags: list[str], raw: dict) -> None:
    parser, _ = build_parser(f"cafa {command}", "", raw, own)
    args, unknown = parser.parse_known_args(flags)
    assert not [a for a in unknown if a.startswith("-")], f"unknown flags {unknown} for `cafa {command}`"


@pytest.mark.parametrize("example", EXAMPLES)
def test_readme_example_parses(example):
    raw = read_params(REPO / "params.yaml")
    words = shlex.split(example)
    if words[0] == "cafa":
        command, rest = words[1], words[2:]
        if rest in ([], ["--help"], ["-h"]):  # naming the command
            assert command in ENTRY_POINTS or command in UTILITIES
            return
        if command == "member":
            assert rest[0] == "--predictor", example
            _check_entry(command, rest[1], rest[2:], raw)
        elif command in ENTRY_POINTS:
            _check_entry(command, None if command == "main" else command, rest, raw)
        else:
            assert command in UTILITIES, f"`{example}`: no command {command!r}"
            module, add, _, _ = UTILITIES[command]
            parser = argparse.ArgumentParser(prog=f"cafa {command}", exit_on_error=False)
            getattr(importlib.import_module(module), add)(parser)
            parser.parse_args(rest)  # raises on an unknown flag or a missing required one
        return
    launcher = argparse.ArgumentParser(exit_on_error=False)
    launcher.add_argument("uri")
    launcher.add_argument("-e", "--entry-point", default="main")
    launcher.add_argument("-P", "--param-list", action="append", default=[])
    launcher.add_argument("--env-manager")
    launcher.add_argument("--experiment-name")
    args = launcher.parse_args(words[2:])
    assert args.uri == ".", example
    entry = args.entry_point
    project = (REPO / "MLproject").read_text()
    assert re.search(rf"^  {re.escape(entry)}:$", project, flags=re.M), f"`{example}`: no entry point {entry}"
    own = MLPROJECT_OWN.get(entry, entry)
    table = flag_table(raw, own)
    for pair in args.param_list:
        key = pair.split("=", 1)[0]
        assert f"--{key}" in table, f"`{example}`: -P {key}= is not a parameter of -e {entry}"


def test_a_stale_key_is_caught():
    """The checker itself: `-e main` takes no short `esm_model` (the README once said so)."""
    with pytest.raises(AssertionError, match="not a parameter of -e main"):
        test_readme_example_parses("mlflow run . -e main -P esm_model=x")
    with pytest.raises(AssertionError, match="unknown flags"):
        test_readme_example_parses("cafa train --esm-model x")


def test_no_merge_conflict_markers_in_docs():
    """A merge left half-resolved shows in the docs people read first (README, RESULTS, the docs folder)."""
    root = Path(__file__).resolve().parent.parent
    markers = ("<<<<<<< ", ">>>>>>> ")
    found = [
        f"{path.relative_to(root)}:{n}"
        for path in [*root.glob("*.md"), *root.glob("benchmarks/*.md")]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.startswith(markers)
    ]
    assert not found, f"merge conflict markers left in: {found}"
