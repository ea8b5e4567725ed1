"""`prepare`: raw CAFA files -> prepared dataset folder; logs dataset statistics and plots."""

from __future__ import annotations

import sys

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.console import run_entry
from cafa_mlflow.tracking import runs
from cafa_mlflow.workflows.prepare import prepare_and_describe


def main(argv=None) -> dict:
    params, _ = parse_params(argv, "cafa prepare", __doc__, own="prepare")
    with runs.start_run(params, "prepare", extra_params={**params.data.to_dict(), **params.prepare.to_dict()}):
        summary = prepare_and_describe(params)
    print(f"prepared dataset in {params.prepare.out}: {summary}")
    return summary


if __name__ == "__main__":
    sys.exit(run_entry(main))
