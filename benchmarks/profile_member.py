"""Where a search member's step spends its time: `cafa member --predictor KIND` run in this process with timers
around its parts (reference preparation, DIAMOND / MMseqs2 commands, hit parsing, the vote, features, writing).

    python benchmarks/profile_member.py --predictor reference --params-file my.yaml [--json out.json]

Each row: calls, wall s, CPU s of this process and CPU s of the child processes (the aligners), inclusive (a part
inside another is counted in both). External commands are named by their sub-command (`mmseqs easy-search`,
`diamond makedb`, ...)."""

from __future__ import annotations

import argparse
import functools
import json
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cafa_mlflow.data import diamond, hit_table, mmseqs  # noqa: E402
from cafa_mlflow.data import reference as data_reference  # noqa: E402
from cafa_mlflow.predictors import crossfit, hit_features, homology, reference  # noqa: E402
from cafa_mlflow.workflows import common  # noqa: E402

TOTALS: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
CALLS: list[tuple[str, int, float, float]] = []
SEARCHES = {"mmseqs easy-search": 2, "diamond blastp": 5}  # the command's argument that is the query FASTA


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(name_of, func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        start, cpu, kids = time.perf_counter(), time.process_time(), _children_cpu()
        try:
            return func(*args, **kwargs)
        finally:
            name = name_of(args)
            row = TOTALS[name]
            row[0] += 1
            if name in SEARCHES:  # each search call too: queries, wall, child CPU
                queries = sum(line.startswith(">") for line in open(args[0][SEARCHES[name]]))
                CALLS.append((name, queries, time.perf_counter() - start, _children_cpu() - kids))
            row[1] += time.perf_counter() - start
            row[2] += time.process_time() - cpu
            row[3] += _children_cpu() - kids

    return wrapper


def _patch(module, attr: str, name_of=None) -> None:
    """Time `module.attr` wherever it was imported by name."""
    original = getattr(module, attr)
    label = f"{module.__name__.rsplit('.', 1)[-1]}.{attr}"
    wrapped = _timed(name_of or (lambda args: label), original)
    if isinstance(module, type):  # a method
        setattr(module, attr, wrapped)
        return
    for mod in list(sys.modules.values()):
        for key, value in list(getattr(mod, "__dict__", {}).items()):
            if value is original:
                setattr(mod, key, wrapped)


def _command(tool: str):
    return lambda args: f"{tool} {args[0][1]}" if args and isinstance(args[0], list) else tool


def instrument() -> None:
    for module, attrs in {
        data_reference: ["prepare_reference", "_annotation_table", "_propagated_labels", "_write_reference",
                         "load_reference", "filter_hits", "drop_near_identical"],
        diamond: ["build_db", "search"],
        hit_table: ["query_records", "read_hits"],
        mmseqs: ["build_index", "search", "_targets_fasta"],
        reference.ReferencePredictor: ["fit", "predict", "_vote", "term_features"],
        homology.HomologyPredictor: ["fit", "predict", "term_features"],
        homology: ["hits_to_scores"],
        hit_features: ["hit_features", "stack_features"],
        crossfit: ["cross_fit"],
        common: ["write_member", "split_scorer", "cross_fitted", "final_fit", "bind_encoder_and_load"],
    }.items():  # fmt: skip
        for attr in attrs:
            _patch(module, attr)
    _patch(mmseqs, "_run", _command("mmseqs"))
    _patch(diamond, "_run", _command("diamond"))
    _patch(mmseqs, "_version", lambda args: "mmseqs version")
    _patch(diamond, "_version", lambda args: "diamond version")


def fit_only(argv: list[str]) -> None:
    """Build the member from params and fit it on no protein (the reference: prepares its database and index)."""
    from types import SimpleNamespace

    from cafa_mlflow.config.flags import parse_params
    from cafa_mlflow.go.ontology import load_obo
    from cafa_mlflow.predictors import registry

    kind = argv[argv.index("--predictor") + 1]
    rest = [a for a in argv if a not in ("--predictor", kind)]
    params, _ = parse_params(rest, "profile_member", __doc__, own=kind)
    registry.build(kind, params, load_obo(params.data.obo)).fit(SimpleNamespace(ids=[]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the rows here too")
    parser.add_argument("--fit-only", action="store_true", help="only the member's fit (the reference: prepared)")
    known, rest = parser.parse_known_args()
    instrument()
    start, cpu, kids = time.perf_counter(), time.process_time(), _children_cpu()
    if known.fit_only:
        fit_only(rest)
    else:
        from pipelines import member

        member.main(rest)
    TOTALS["(whole step)"] = [1, time.perf_counter() - start, time.process_time() - cpu, _children_cpu() - kids]
    print(f"{'part':40s} {'calls':>5s} {'wall s':>8s} {'CPU s':>8s} {'child CPU s':>11s}")
    for name, (n, wall, own, child) in TOTALS.items():
        print(f"{name:40s} {n:5d} {wall:8.1f} {own:8.1f} {child:11.1f}")
    for name, queries, wall, child in CALLS:
        print(f"{name:28s} {queries:6d} queries {wall:8.1f} wall s {child:8.1f} child CPU s")
    if known.json:
        known.json.write_text(json.dumps({"parts": TOTALS, "calls": CALLS}, indent=1) + "\n")


if __name__ == "__main__":
    main()
