"""`member --predictor KIND`: fit one member (naive, homology, knn, ...) on the prepared `train` split only,
predict `val` and `test`, save <outputs.predictions>/<kind>/{val,test}.npz, model/ and metrics.json, log
val_/test_ metrics. The predictor's params.yaml block is this command's own block (`--k 5` for knn)."""

from __future__ import annotations

import argparse
import sys

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.console import run_entry
from cafa_mlflow.errors import ConfigError
from cafa_mlflow.predictors.registry import MEMBER_KINDS
from cafa_mlflow.tracking import runs
from cafa_mlflow.tracking.metric_names import column_metrics
from cafa_mlflow.workflows.member import fit_member

CHOICES = tuple(k for k in MEMBER_KINDS if k != "neural")  # the neural member has its own step: `cafa train`


def main(argv=None) -> dict[str, float]:
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--predictor", choices=CHOICES)
    known, rest = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    kind = known.predictor
    if kind is None:
        if any(a in ("-h", "--help") for a in rest):
            print(f"usage: cafa member --predictor {{{','.join(CHOICES)}}} [flags; see --predictor X --help]")
            return {}
        raise ConfigError(f"pass --predictor, one of {', '.join(CHOICES)} (the neural member is `cafa train`).")
    params, _ = parse_params(rest, f"cafa member --predictor {kind}", __doc__, own=kind)
    with runs.start_run(params, kind, extra_params={"predictor": kind, **params.block(kind).to_dict()}):
        metrics = fit_member(kind, params)
        runs.log_metrics(column_metrics(metrics))
    if metrics:  # empty when the member was skipped (fit_member said why)
        summary = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if "f_w_" in k)
        print(f"{kind}: predictions in {params.outputs.predictions}/{kind} ({summary})")
    return metrics


if __name__ == "__main__":
    sys.exit(run_entry(main))
