"""Command-line flags from params.yaml: one flag per key, one key per flag, in every command.

A command's own block takes short flags (`cafa train --loss focal`, `mlflow run . -e train -P loss=focal`);
every block, the own one included, takes its prefixed form (`--prepare-out X`, `--prepare_out X`, or
`--prepare.out X`, which is what `mlflow run -P prepare.out=X` passes). A short flag of another block is
rejected with a message naming its prefixed form, so no flag means a different key in another command."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from cafa_mlflow.config.params_file import load_params, read_params
from cafa_mlflow.config.schema import Params, validate
from cafa_mlflow.errors import ConfigError


def _spellings(name: str) -> list[str]:
    return sorted({f"--{name}", f"--{name.replace('_', '-')}"})


def flag_table(raw: dict, own: str | None) -> dict[str, str]:
    """{option string: dotted params.yaml key} for a command whose own block is `own` (None: no block)."""
    table: dict[str, str] = {}

    def claim(option: str, key: str) -> None:
        if table.get(option, key) != key:
            raise ConfigError(
                f"flag {option} would mean both {table[option]} and {key}; rename one key in params.yaml."
            )
        table[option] = key

    for section, block in raw.items():
        for name, value in (block or {}).items():
            if isinstance(value, dict):  # tune.space: data, not a flag
                continue
            key = f"{section}.{name}"
            for option in [*_spellings(f"{section}_{name}"), f"--{key}"]:
                claim(option, key)
            if section == own:
                for option in _spellings(name):
                    claim(option, key)
    return table


# the flags a command's help shows first (own block keys; None: `cafa main`); other blocks: their first keys
MOST_USED = {
    None: ("embed.esm_model", "prepare.subsample", "prepare.test_subsample", "ensemble.method"),
    "prepare": ("subsample", "test_subsample", "split", "min_count", "out"),
    "embed": ("esm_model", "strategy", "layer", "pooling", "device", "toks_per_batch", "fasta"),
    "train": ("model", "loss", "lr", "max_epochs", "batch_size", "hidden_dim", "dropout"),
    "tune": ("n_trials", "study_name", "storage", "objective", "timeout"),
    "ensemble": ("method", "members", "fit_on"),
    "predict": ("fasta", "out", "model_uri", "evidence", "batch_size", "threads", "shard", "engine"),
    "evaluate": ("pred", "truth", "obo", "ia", "out_json"),
    "homology": ("sensitivity", "evalue", "max_target_seqs", "threads"),
    "knn": ("k",),
    "naive": ("denominator", "min_score"),
}
MOST_USED_DEFAULT = 5


def most_used(raw: dict, own: str | None) -> str:
    """The help's first lines after the description: the command's most used flags with their defaults."""
    if own is None:
        keys = [(f"--{k.replace('.', '-').replace('_', '-')}", k) for k in MOST_USED[None]]
    else:
        names = MOST_USED.get(own) or list(raw.get(own) or {})[:MOST_USED_DEFAULT]
        keys = [(f"--{n.replace('_', '-')}", f"{own}.{n}") for n in names if n in (raw.get(own) or {})]
    keys = [(flag, key) for flag, key in keys if not isinstance(_value(raw, key), dict)]
    if not keys:
        return ""
    width = max(len(f) for f, _ in keys) + 2
    lines = [f"  {flag:<{width}}{key} (default: {_value(raw, key)!r})" for flag, key in keys]
    return (
        "most used flags (all flags, block by block, below; `--a-b`, `--a_b` and `--block.a_b` all work):\n"
        + "\n".join(lines)
    )


def _value(raw: dict, key: str) -> Any:
    section, name = key.split(".", 1)
    return (raw.get(section) or {}).get(name)


def build_parser(prog: str, description: str, raw: dict, own: str | None) -> tuple[argparse.ArgumentParser, dict]:
    """An argparse parser listing every flag, grouped by block (the own block first), with its default; its help
    starts with what the command does and its most used flags; returns (parser, dest -> key)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} [--FLAG VALUE ...]   (every params.yaml key is a flag: list below)",
        description="\n\n".join(p for p in (textwrap.dedent(description or "").strip(), most_used(raw, own)) if p),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--params", default=None, help="parameter file (default: params.yaml)")
    parser.add_argument(
        "--params-file",
        "--params_file",
        dest="params_file",
        default=None,
        help="YAML of keys that override params.yaml (e.g. tune's best_params.yaml)",
    )
    table = flag_table(raw, own)
    options: dict[str, list[str]] = {}
    for option, key in table.items():
        options.setdefault(key, []).append(option)
    groups: dict[str, Any] = {}
    if own in raw:  # the own block's group first
        groups[own] = parser.add_argument_group(f"{own} (own block)")
    dests = {}
    for key, opts in options.items():
        section, name = key.split(".", 1)
        title = f"{section} (own block)" if section == own else section
        group = groups.get(section) or groups.setdefault(section, parser.add_argument_group(title))
        opts.sort(key=lambda o: (o.startswith(f"--{section}"), "." in o, "_" in o, len(o)))
        default = raw[section][name]
        dest = key.replace(".", "__")
        dests[dest] = key
        # the help shows one spelling per key (the others, `_` and `.` forms, work the same)
        group.add_argument(opts[0], dest=dest, default=None, metavar="V", help=f"{key} (default: {default!r})")
        if opts[1:]:
            group.add_argument(*opts[1:], dest=dest, default=None, help=argparse.SUPPRESS)
    return parser, dests


def unknown_flag_message(prog: str, flag: str, raw: dict) -> str:
    """What to say about a flag that is not one of this command's: name the prefixed forms it may mean."""
    name = flag.lstrip("-").split("=", 1)[0].replace("-", "_")
    owners = [f"{s}.{name}" for s, block in raw.items() if isinstance(block, dict) and name in block]
    if not owners:
        return f"{prog}: unknown flag {flag}; see `{prog} --help`."
    hints = " or ".join(f"--{k.replace('.', '-').replace('_', '-')} (-P {k}=...)" for k in owners)
    return f"{prog}: {flag} is not a flag of this command; {' / '.join(owners)} is set with {hints}."


def parse_params(
    argv: Sequence[str] | None, prog: str, description: str, own: str | None
) -> tuple[Params, argparse.Namespace]:
    """params.yaml + --params-file + flags -> (validated Params, raw args). Empty values count as not given."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--params", default=None)
    known, _ = pre.parse_known_args(argv)
    lines: dict[str, str] = {}
    raw = read_params(known.params, lines)  # read once: the flags' table, then the merge
    parser, dests = build_parser(prog, description, raw, own)
    args, unknown = parser.parse_known_args(argv)
    flags = [a for a in unknown if a.startswith("--")]
    if flags:
        raise ConfigError(unknown_flag_message(prog, flags[0], raw))
    if unknown:
        raise ConfigError(f"{prog}: unexpected argument {unknown[0]!r}; flags take the form --key value.")
    overrides = {dests[d]: v for d, v in vars(args).items() if d in dests and v not in (None, "")}
    sources: dict[str, str] = {}
    merged = load_params(overrides=overrides, params_file=args.params_file or None, sources=sources, raw=(raw, lines))
    return validate(merged, sources), args
