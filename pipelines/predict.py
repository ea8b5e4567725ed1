"""`predict --fasta FASTA --out PATH`: the registered champion (or any model URI) scores a FASTA into a
CAFA-6 submission; the FASTA is embedded first (same settings as the model's members) when they need it."""

from __future__ import annotations

import sys
from pathlib import Path

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.console import run_entry
from cafa_mlflow.errors import InputError
from cafa_mlflow.io.submission import validate_submission
from cafa_mlflow.io.text import check_writable
from cafa_mlflow.serving.loading import load_model
from cafa_mlflow.tracking import runs
from cafa_mlflow.workflows.predict import default_fasta, predict_fasta


def main(argv=None) -> Path:
    params, _ = parse_params(argv, "cafa predict", __doc__, own="predict")
    cfg = params.predict
    fasta, out = cfg.fasta or default_fasta(params), Path(cfg.out)
    uri = cfg.model_uri or f"models:/{params.tracking.registered_model}@champion"
    check_writable(out)  # before loading the model and embedding: fail now, not after all the work
    if cfg.evidence:
        check_writable(Path(cfg.evidence))
    with runs.start_run(params, "predict", extra_params={**cfg.to_dict(), "fasta": fasta, "model_uri": uri}):
        model = load_model(uri)  # names the version, alias and missing path when artifacts are gone
        lines = predict_fasta(model, fasta, out, params)
        found = validate_submission(out, max_terms=params.submission.max_terms)
        if found.counts:
            raise InputError(
                f"{out}: the written submission breaks {sum(found.counts.values())} rules, "
                f"e.g. {found[0]}; please report this as a bug."
            )
        runs.log_metrics({"submission_lines": lines, "submission_proteins": found.n_proteins})
        runs.log_artifacts([out], "submission")
        if cfg.evidence:
            runs.log_artifacts([cfg.evidence], "evidence")
    print(f"submission: {out} ({found.n_proteins} proteins, {lines} lines) from {uri}")
    return out


if __name__ == "__main__":
    sys.exit(run_entry(main))
