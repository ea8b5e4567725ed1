"""`evaluate`: CAFA metrics (F-max, IA-weighted F-max, S-min per aspect; same numbers as cafaeval 1.3.0,
prop='max', norm='cafa').

  cafa evaluate --obo OBO --truth TERMS_TSV --pred SUBMISSION_TSV [--ia IA_TSV] [--threshold-step 0.01] [--out-json PATH]
      one submission file against a truth file (Kaggle's terms format): prints the table, writes the JSON
      {"BPO": {"f", "f_w", "tau", "tau_w", "s", ...}, ..., "mean_f_w": ..}; no MLflow run.
      --pred A.tsv,B.tsv or --pred FOLDER scores several files with one reading of ontology and truth;
      the JSON is then {file name: result} and the time per file is printed.
  cafa evaluate
      every <predictions>/<name>/test.npz (members and ensemble) against the prepared test truth: JSON
      {name: result}, a markdown table beside it, and an MLflow run logging test_<name>_f_w_mean etc.
Defaults: obo = data.obo, truth = the prepared test_terms.tsv, ia = the prepared ia.tsv (else data.ia).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from cafa_mlflow.console import run_entry
from cafa_mlflow.errors import InputError
from cafa_mlflow.evaluation.report import format_table, markdown_summary, write_json
from cafa_mlflow.evaluation.scorer import Scorer, flat_metrics, read_truth
from cafa_mlflow.flags import parse_params
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.ia import read_ia
from cafa_mlflow.labels import load_term_matrix
from cafa_mlflow.metric_vocabulary import headline
from cafa_mlflow.reports import write_reports

ORDER_LAST = ("ensemble",)  # members first, then the ensemble
log = logging.getLogger(__name__)


def resolve_inputs(params) -> dict:
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


def load_ia(path) -> dict | None:
    if not path:
        log.warning("no IA file (evaluate.ia, prepared ia.tsv, data.ia): weighted metrics use weight 1 per term")
        return None
    return read_ia(path)


def evaluate_file(ev: dict) -> dict:
    """Mode (a): one or more submission files."""
    from cafa_mlflow.evaluation.files import result_names, score_files, submission_paths

    paths = submission_paths(ev["pred"])
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
    write_json(ev["out_json"], results if len(paths) > 1 else results[next(iter(results))])
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


def evaluate_predictions_folder(params, ev: dict) -> dict:
    """Mode (b): every saved test prediction, logged to an MLflow run."""
    from cafa_mlflow import tracking

    files = prediction_files(ev["predictions"])
    ontology = load_obo(ev["obo"])
    scorer = Scorer(ontology, read_truth(ev["truth"], ontology), load_ia(ev["ia"]), float(ev["threshold_step"]))
    out_json = Path(ev["out_json"])
    table_path = out_json.with_name(f"{out_json.stem}_table.md")
    with tracking.start_run(params, "evaluate", extra_params={f"evaluate_{k}": v for k, v in ev.items()}):
        results = {}
        for name, path in files.items():
            results[name] = scorer(load_term_matrix(path))
            print(f"\n{name} ({path}):\n{format_table(results[name])}")
            tracking.log_metrics(headline(flat_metrics(results[name], prefix=f"test_{name}_")))
        write_json(out_json, results)
        from cafa_mlflow.io.text import atomic_write

        with atomic_write(table_path) as handle:
            handle.write(markdown_summary(results))
        print(f"\n{markdown_summary(results)}\nwrote {out_json} and {table_path}")
        write_reports(params, results, scorer)  # headline.json and PR curves for dvc metrics / plots
        tracking.log_artifacts([out_json, table_path], "metrics")
    return results


def main(argv=None) -> dict:
    params, _ = parse_params(argv, "cafa evaluate", __doc__, own="evaluate")
    ev = resolve_inputs(params)
    if ev.get("pred"):
        return evaluate_file(ev)
    return evaluate_predictions_folder(params, ev)


if __name__ == "__main__":
    sys.exit(run_entry(main))
