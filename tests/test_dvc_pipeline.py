"""dvc.yaml and the Makefile's offline route agree with the code: one small metrics file, the plot files the
report writes, an embedding cache that survives experiments, `make repro ESM=tiny` with no download."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cafa_mlflow.config.params_file import load_params
from cafa_mlflow.evaluation.reports import HEADLINE_FILE, PLOTS_DIR
from cafa_mlflow.go.ontology import ASPECTS

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def test_one_small_metrics_file():
    metrics = [next(iter(m)) for stage in PIPELINE["stages"].values() for m in stage.get("metrics", [])]
    out_json = Path(load_params()["evaluate"]["out_json"])
    assert metrics == [str(out_json.parent / HEADLINE_FILE)]


def test_plots_read_the_files_the_code_writes():
    params = load_params()
    plots = [p if isinstance(p, str) else next(iter(p)) for p in PIPELINE["plots"]]
    pr_dir = Path(params["evaluate"]["out_json"]).parent / PLOTS_DIR
    history = Path(params["outputs"]["predictions"]) / "neural" / "history.png"
    assert plots == [str(pr_dir / "precision_recall.png"), str(history)]
    evaluate_outs = [next(iter(o)) if isinstance(o, dict) else o for o in PIPELINE["stages"]["evaluate"]["outs"]]
    assert str(pr_dir) in evaluate_outs


@pytest.mark.skipif(shutil.which("dvc") is None and not (Path(sys.executable).parent / "dvc").exists(), reason="no dvc")
def test_dvc_plots_show_renders_offline(tmp_path):
    """`dvc plots show` on the project's plots (drawn by the code from small curves): a page with the images and
    no script from the network, so it renders offline."""
    from cafa_mlflow.evaluation.reports import write_history, write_pr_png

    params = load_params()
    pr_dir = tmp_path / Path(params["evaluate"]["out_json"]).parent / PLOTS_DIR
    curve = pd.DataFrame(
        {"recall": [0.1, 0.5], "precision": [0.9, 0.4], "recall_w": [0.1, 0.4], "precision_w": [0.8, 0.3]}
    )
    write_pr_png({a: curve for a in ASPECTS}, pr_dir / "precision_recall.png")
    history = [
        {"train_loss": 0.9, "val_loss": 0.8, "val_f_w_mean": 0.1},
        {"train_loss": 0.5, "val_loss": 0.6, "val_f_w_mean": 0.3},
    ]
    write_history(history, tmp_path / Path(params["outputs"]["predictions"]) / "neural" / "history.csv")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"plots": PIPELINE["plots"]}))
    dvc = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True, env=env)
    done = subprocess.run([dvc, "plots", "show", "-o", "page"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "page" / "index.html").read_text()
    assert page.count("<img") == 2, page
    assert not re.search(r"<script[^>]+src=", page) and "http" not in page.replace("http-equiv", ""), page


def test_embedding_cache_is_persistent_and_not_dvc_cached():
    (out,) = PIPELINE["stages"]["embed"]["outs"]
    assert out == {load_params()["embed"]["out"]: {"persist": True, "cache": False}}


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_repro_tiny_makes_the_checkpoint_then_sets_the_encoder():
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "install", "repro", "ESM=tiny"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert dry[0].startswith("[ -f outputs/esm2_tiny.pt ] ||") and dry[0].endswith(
        "cafa make-tiny-esm --out outputs/esm2_tiny.pt"
    )
    assert dry[1].endswith("dvc exp run -S embed.esm_model=outputs/esm2_tiny.pt")
    plain = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "install", "repro"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert plain.strip().endswith("dvc repro") and "tiny" not in plain
    ui = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "install", "ui"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert "mlflow ui --backend-store-uri" in ui and "--host 127.0.0.1" in ui


# --- every stage depends on the code it runs and the params blocks it reads ------------------------------------
# The code a stage runs is the import closure of its `python -m` module in the graph tests/test_layers.py checks
# the layers on (lazy imports inside functions count; `if TYPE_CHECKING:` imports do not run), plus the parent
# packages' __init__.py (Python runs them first) and the predictor kinds the registry imports by name.
# The blocks a stage reads are found statically in that closure: every `params.<block>`, `params["<block>"]`,
# `params.get("<block>")` and `params.block("<block>")` (a superset of what one run reads: DVC re-runs too
# often rather than too rarely), with three precisions that follow how the code is called:
# - a predictor's `from_params` / `needs` count only for the kinds the stage builds (`registry.build`: the kind
#   --predictor names; the blend or stacker where the ensemble is fitted), plus the block each such kind is
#   built from; `unavailable` only for the kinds whose availability it checks (its member; the ensemble: all);
# - config/ (loading validates every block) and tracking/ (run names, tags, logged params) read blocks that
#   cannot change what a stage writes, and so does the `tracking` block itself (where MLflow logs).
PIPELINES = ROOT / "pipelines"
REGISTRY_CALLS = {"from_params": "built", "needs": "built", "unavailable": "checked"}
READS_NOT_OUTPUTS = ("cafa_mlflow.config", "cafa_mlflow.tracking")
NOT_OUTPUT_BLOCKS = {"tracking"}


def module_files() -> dict[str, Path]:
    from test_layers import module_name

    return {module_name(p): p for package in (ROOT / "cafa_mlflow", PIPELINES) for p in package.rglob("*.py")}


def stage_kinds(cmd: str, modules: set[str]) -> dict[str, set[str]]:
    """{"built": kinds the stage builds from params, "checked": kinds whose availability it checks}."""
    from cafa_mlflow.predictors.registry import ENSEMBLE_METHODS, MEMBER_KINDS

    flags = cmd.split()
    member = {flags[flags.index("--predictor") + 1]} if "--predictor" in flags else set()
    fits_ensemble = "cafa_mlflow.workflows.ensemble" in modules
    return {
        "built": member | (set(ENSEMBLE_METHODS.values()) if fits_ensemble else set()),
        "checked": member | (set(MEMBER_KINDS) if fits_ensemble else set()),
    }


def stage_modules(cmd: str, loads_saved: bool = True) -> set[str]:
    """Every module `cmd` (`python -m pipelines.x [--predictor KIND]`) imports, directly or not, with the kinds
    it builds; with `loads_saved` every kind wherever `Predictor.load` can run (it imports a saved kind by name)."""
    from test_layers import import_graph

    from cafa_mlflow.predictors.registry import PREDICTORS

    graph = import_graph(packages=(ROOT / "cafa_mlflow", PIPELINES))
    roots = {re.search(r"python -m ([\w.]+)", cmd).group(1)}
    while True:
        seen = _closure(graph, roots)
        kinds = set().union(*stage_kinds(cmd, seen).values())
        if loads_saved and "cafa_mlflow.predictors.base" in seen:
            kinds |= set(PREDICTORS)
        more = {PREDICTORS[kind].split(":")[0] for kind in kinds} - seen
        if not more:
            return seen
        roots |= more


def _closure(graph: dict[str, set[str]], roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in seen and name in graph:
            seen.add(name)
            todo += [*graph[name], *(".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1))]
    return seen


def code_covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == d.rstrip("/") or rel.startswith(d.rstrip("/") + "/") for d in deps)


def blocks_read(cmd: str) -> set[str]:
    """params.yaml blocks the stage `cmd` reads (see the comment above for the rules)."""
    import ast

    from cafa_mlflow.predictors.registry import PREDICTORS, predictor_class

    modules = stage_modules(cmd, loads_saved=False)
    kinds = stage_kinds(cmd, modules)
    kinds_of = {m: {k for k, spec in PREDICTORS.items() if spec.startswith(m + ":")} for m in modules}
    blocks = set(load_params()) - NOT_OUTPUT_BLOCKS
    found = {predictor_class(k).params_block or k for k in kinds["built"]}  # registry.build: params.block(kind)
    files = module_files()
    for name in sorted(modules):
        if name.startswith(READS_NOT_OUTPUTS):
            continue
        tree = ast.parse(files[name].read_text())
        for node in ast.walk(tree):  # drop the registry-called methods of kinds this stage does not build/check
            if isinstance(node, ast.FunctionDef) and node.name in REGISTRY_CALLS:
                if not kinds_of.get(name, set()) & kinds[REGISTRY_CALLS[node.name]]:
                    node.body = []
        for node in ast.walk(tree):
            found |= _block_of(node) & blocks
    return found


def _is_params(node) -> bool:
    import ast

    return (isinstance(node, ast.Name) and node.id == "params") or (
        isinstance(node, ast.Attribute) and node.attr == "params"
    )


def _block_of(node) -> set[str]:
    """{block} when `node` reads one block of a params object (attribute, item, get or block call)."""
    import ast

    if isinstance(node, ast.Attribute) and _is_params(node.value):
        return {node.attr}
    if isinstance(node, ast.Subscript) and _is_params(node.value) and isinstance(node.slice, ast.Constant):
        return {node.slice.value}
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("get", "block")
        and _is_params(node.func.value)
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        return {node.args[0].value}
    return set()


def python_stages() -> dict[str, dict]:
    return {name: s for name, s in PIPELINE["stages"].items() if re.search(r"python -m pipelines\.", s["cmd"])}


def test_every_stage_depends_on_all_the_code_it_runs():
    files = module_files()
    missing = {
        name: [
            files[m].relative_to(ROOT).as_posix()
            for m in sorted(stage_modules(s["cmd"]))
            if not code_covered(files[m], s["deps"])
        ]
        for name, s in python_stages().items()
    }
    assert {name: paths for name, paths in missing.items() if paths} == {}


def test_every_stage_lists_the_params_blocks_it_reads():
    missing = {name: sorted(blocks_read(s["cmd"]) - set(s.get("params", []))) for name, s in python_stages().items()}
    assert {name: blocks for name, blocks in missing.items() if blocks} == {}


def test_the_checks_see_what_a_stage_runs_and_reads():
    files = module_files()
    homology = "python -m pipelines.member --predictor homology"
    runs = stage_modules(homology, loads_saved=False)
    assert {"pipelines.member", "cafa_mlflow", "cafa_mlflow.predictors.homology", "cafa_mlflow.data.diamond"} <= runs
    assert "cafa_mlflow.predictors.knn" in stage_modules(homology)  # a saved model of any kind can be loaded
    assert not code_covered(files["cafa_mlflow.data.diamond"], ["cafa_mlflow/predictors", "cafa_mlflow/data.py"])
    assert code_covered(files["cafa_mlflow.data.diamond"], ["cafa_mlflow/data/"])
    assert {"homology", "folds", "evaluate"} <= blocks_read(homology)
    assert not {"tracking", "knn", "train", "stacker"} & blocks_read(homology)
    assert {"ensemble", "stacker", "submission", "reference"} <= blocks_read("python -m pipelines.ensemble")


if __name__ == "__main__":  # `python tests/test_dvc_pipeline.py`: the params blocks each stage reads
    for stage_name, stage in python_stages().items():
        print(f"{stage_name}: {sorted(blocks_read(stage['cmd']))}")
