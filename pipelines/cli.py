"""`cafa` console script: one subcommand per MLflow entry point (same parameters as flags) + utilities."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cafa_mlflow.console import run_entry

# entry points: `pipelines.<module>.main(argv)`; flags are params.yaml keys (see cafa_mlflow/config/flags.py)
ENTRY_POINTS = {
    "prepare": "pipelines.prepare",
    "embed": "pipelines.embed",
    "train": "pipelines.train",
    "tune": "pipelines.tune",
    "member": "pipelines.member",
    "ensemble": "pipelines.ensemble",
    "predict": "pipelines.predict",
    "evaluate": "pipelines.evaluate",
    "main": "pipelines.main",
}
ENTRY_HELP = {
    "prepare": "split the training pool (train/val, homology clusters), labels, IA, FASTA files",
    "embed": "ESM-2 embeddings of the prepared proteins into a resumable cache",
    "train": "fit the neural member, register it as a model version",
    "tune": "Optuna search over params.yaml's tune.space (several workers may share a study)",
    "member": "fit one member: --predictor KIND (naive, homology, knn, ...: its params.yaml block)",
    "ensemble": "combine the members (blend or stacker), register it; the champion alias moves if it wins",
    "predict": "a CAFA-6 submission from the champion (or --model-uri) for a FASTA; --evidence for why",
    "evaluate": "CAFA metrics (weighted F-max, S-min) of predictions against the test truth",
    "main": "the whole chain, prepare to predict, as nested MLflow runs",
}
# utilities: (module, add-arguments function, run function, help)
UTILITIES = {
    "ia": (
        "pipelines.ia",
        "add_ia_arguments",
        "run_ia",
        "information accretion from annotations",
    ),
    "stats": ("pipelines.stats", "add_stats_arguments", "run_stats", "dataset analysis tables and plots"),
    "validate-submission": (
        "pipelines.validate_submission",
        "add_validate_arguments",
        "run_validate",
        "check a CAFA-6 submission file",
    ),
    "merge-shards": (
        "pipelines.merge_shards",
        "add_merge_arguments",
        "run_merge",
        "join the parts of `cafa predict --shard i/N` into one submission",
    ),
    "compare": (
        "pipelines.compare",
        "add_compare_arguments",
        "run_compare",
        "train runs side by side from the store",
    ),
    "explain": (
        "pipelines.explain",
        "add_explain_arguments",
        "run_explain",
        "why the model predicts each GO term for one protein (members, hits, prior)",
    ),
    "make-tiny-esm": (
        "pipelines.make_tiny_esm",
        "add_tiny_arguments",
        "run_make_tiny",
        "write a small random ESM-2 checkpoint (tests, offline runs)",
    ),
}


def _usage() -> str:
    lines = ["usage: cafa COMMAND [flags]   (cafa COMMAND --help for its flags)", "", "entry points:"]
    lines += [f"  {name:22s}{ENTRY_HELP[name]}" for name in ENTRY_POINTS]
    lines += ["", "utilities:"] + [f"  {name:22s}{spec[3]}" for name, spec in UTILITIES.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command in ENTRY_POINTS:
        return run_entry(importlib.import_module(ENTRY_POINTS[command]).main, rest)
    if command in UTILITIES:
        module_name, add_name, run_name, help_text = UTILITIES[command]
        module = importlib.import_module(module_name)
        parser = argparse.ArgumentParser(prog=f"cafa {command}", description=help_text)
        getattr(module, add_name)(parser)
        args = parser.parse_args(rest)
        return run_entry(lambda _argv: getattr(module, run_name)(args))
    print(f"cafa: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
