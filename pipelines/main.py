"""`main`: the whole chain on the bundled sample, each step a nested MLflow run under one parent:
prepare -> embed -> naive, homology, knn -> train -> ensemble -> evaluate -> predict."""

from __future__ import annotations

import sys
import time

from cafa_mlflow import tracking
from cafa_mlflow.config import load_params
from pipelines.common import parse_params, run_main, run_step

STEPS = (
    ("prepare", []),
    ("embed", []),
    ("member", ["--predictor", "naive"]),
    ("member", ["--predictor", "homology"]),
    ("member", ["--predictor", "knn"]),
    ("train", []),
    ("ensemble", []),
    ("evaluate", []),
    ("predict", []),
)


def sections() -> list[str]:
    return [name for name, value in load_params().items() if isinstance(value, dict) and name != "tune"]


def main(argv=None) -> None:
    params, _ = parse_params(argv, "cafa main", __doc__, sections())
    from cafa_mlflow.embed import fetch_weights

    fetch_weights(params["embed"]["esm_model"])  # offline without weights: stop now, not after prepare
    with tracking.start_run(params, "main") as parent:
        for name, extra in STEPS:
            t0 = time.perf_counter()
            run_step(name, params, extra)
            label = extra[-1] if name == "member" else name
            tracking.log_metrics({f"seconds_{label}": time.perf_counter() - t0})
        uri = tracking.configure(params)
        print(
            f"\nDone. Runs: `mlflow ui --backend-store-uri {uri}` then open http://127.0.0.1:5000 "
            f"(experiment run {parent.info.run_id}).\nSubmission: {params['predict']['out']}"
        )


if __name__ == "__main__":
    sys.exit(run_main(main))
