"""The `evaluate` workflow: one or more submission files against a truth file (no run), or every saved
test prediction of the members and the ensemble (an MLflow run, test.json, a markdown table, DVC reports)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from cafa_mlflow.errors import InputError
from cafa_mlflow.evaluation.reports import FINAL, write_reports
from cafa_mlflow.evaluation.scorer import Scorer, flat_metrics, read_truth
from cafa_mlflow.evaluation.tables import format_table, markdown_summary, table_path
from cafa_mlflow.go.labels import load_term_matrix
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.ia import read_ia
from cafa_mlflow.io.outputs import mark_files
from cafa_mlflow.io.text import claim_files, write_json
from cafa_mlflow.tracking.metric_names import column_metrics

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params

ORDER_LAST = ("ensemble",)  # members first, then the ensemble
log = logging.getLogger(__name__)


def resolve_inputs(params: Params) -> dict:
    """Fill the null keys of the evaluate block from the data/prepare blocks."""
    ev, prepared = params.evaluate.to_dict(), Path(params.prepare.out)
    ev["obo"] = ev.get("obo") or params.data.obo
    ev["predictions"] = params.outputs.predictions
    if not ev.get("truth"):
        ev["truth"] = prepared / "test_terms.tsv"
        if not ev["truth"].exists():
            raise InputError(
                f"{ev['truth']}: no test truth; run `cafa prepare` with data.test_terms set, or pass --truth TERMS_TSV."
            )
    if not ev.get("ia"):
        ev["ia"] = prepared / "ia.tsv" if (prepared / "ia.tsv").exists() else params.data.ia
    return ev


def _inputs(ev: dict) -> dict:
    """The files evaluate reads, by the flag that names them (an output may be none of them)."""
    return {"--obo": ev["obo"], "--truth": ev["truth"], "--ia": ev["ia"] or None}


def load_ia(path) -> dict | None:
    if not path:
        log.warning("no IA file (evaluate.ia, prepared ia.tsv, data.ia): weighted metrics use weight 1 per term")
        return None
    return read_ia(path)


def evaluate_file(ev: dict) -> dict:
    """Mode (a): one or more submission files."""
    from cafa_mlflow.evaluation.files import result_names, score_files, submission_paths

    paths = submission_paths(ev["pred"])
    claim_files({**_inputs(ev), **{f"--pred {p}": p for p in paths}}, {"--out-json": ev["out_json"]})
    ontology = load_obo(ev["obo"])
    scorer = Scorer(ontology, read_truth(ev["truth"], ontology), load_ia(ev["ia"]), float(ev["threshold_step"]))
    results, seconds = {}, []
    for name, (path, result, took) in zip(result_names(paths), score_files(scorer, paths)):
        results[name] = result
        seconds.append(took)
        print(f"\n{path} ({took:.2f} s):\n{format_table(result)}" if len(paths) > 1 else format_table(result))
    if len(paths) > 1:
        after = f", {sum(seconds[1:]) / (len(seconds) - 1):.2f} s per file after the first" if len(seconds) > 1 else ""
        print(f"\n{len(paths)} files scored{after}")
    write_json(ev["out_json"], results if len(paths) > 1 else results[next(iter(results))], indent=2)
    mark_files(ev["out_json"])
    print(f"wrote {ev['out_json']}")
    return results if len(paths) > 1 else results[next(iter(results))]


def prediction_files(folder: str | Path) -> dict[str, Path]:
    """name -> <folder>/<name>/test.npz, members sorted by name, then the ensemble."""
    found = {p.parent.name: p for p in sorted(Path(folder).glob("*/test.npz"))}
    if not found:
        raise InputError(
            f"{folder}: no <name>/test.npz predictions; run the member steps "
            "(`cafa member --predictor naive`, ...) and `cafa ensemble` first."
        )
    return dict(sorted(found.items(), key=lambda kv: (kv[0] in ORDER_LAST, kv[0])))


def evaluate_predictions_folder(params: Params, ev: dict) -> dict:
    """Mode (b): every saved test prediction, logged into the active MLflow run."""
    from cafa_mlflow.io.text import atomic_write
    from cafa_mlflow.tracking import runs

    files = prediction_files(ev["predictions"])
    out_json = Path(ev["out_json"])
    table = table_path(out_json)
    claim_files(_inputs(ev), {"--out-json": out_json, "the table beside --out-json": table})
    ontology = load_obo(ev["obo"])
    scorer = Scorer(ontology, read_truth(ev["truth"], ontology), load_ia(ev["ia"]), float(ev["threshold_step"]))
    results, curves = {}, {}
    for name, path in files.items():
        curves[name] = scorer.curves(load_term_matrix(path))  # scored once: metrics here, PR curves below
        results[name] = scorer.summary(curves[name])
        print(f"\n{name} ({path}):\n{format_table(results[name])}")
        runs.log_metrics(column_metrics(flat_metrics(results[name], prefix=f"test_{name}_")))
    write_json(out_json, results, indent=2)
    with atomic_write(table) as handle:
        handle.write(markdown_summary(results))
    mark_files(out_json, table)
    print(f"\n{markdown_summary(results)}\nwrote {out_json} and {table}")
    write_reports(out_json, results, curves.get(FINAL), scorer.tau)  # headline.json, PR curves: dvc metrics/plots
    runs.log_artifacts([out_json, table], "metrics")
    return results
