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

import sys

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.console import run_entry
from cafa_mlflow.workflows.evaluate import evaluate_file, evaluate_predictions_folder, resolve_inputs


def main(argv=None) -> dict:
    params, _ = parse_params(argv, "cafa evaluate", __doc__, own="evaluate")
    ev = resolve_inputs(params)
    if ev.get("pred"):  # mode (a): files, no run (and no MLflow import)
        return evaluate_file(ev)
    from cafa_mlflow.tracking import runs  # MLflow only where a run is opened

    with runs.start_run(params, "evaluate", extra_params={f"evaluate_{k}": v for k, v in ev.items()}):
        return evaluate_predictions_folder(params, ev)


if __name__ == "__main__":
    sys.exit(run_entry(main))
