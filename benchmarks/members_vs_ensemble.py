"""Members vs ensemble, weighted F-max per aspect on the validation and test proteins.

Reads what `cafa main` (or `dvc repro`) left in <ensemble.predictions>/<member>/{val,test}.npz, scores
every member and the ensemble with cafa_mlflow.evaluation.scorer against the prepared val/test truth, prints a
table and refreshes the "## Members vs ensemble" section of benchmarks/RESULTS.md.

    python benchmarks/members_vs_ensemble.py [--params params.yaml] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from pathlib import Path

from results_md import write_section  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

from cafa_mlflow.config import load_params
from cafa_mlflow.dataset import load_prepared
from cafa_mlflow.evaluation.scorer import Scorer, flat_metrics, read_truth
from cafa_mlflow.go.ontology import ASPECTS, load_obo
from cafa_mlflow.labels import load_term_matrix

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Members vs ensemble"


def scores(params: dict) -> dict[str, dict[str, float]]:
    cfg = params["ensemble"]
    prepared = load_prepared(params["prepare"]["out"])
    ontology = load_obo(params["data"]["obo"])
    root = Path(params["outputs"]["predictions"])
    out: dict[str, dict[str, float]] = {}
    for split in ("val", "test"):
        truth_file = prepared.truth_file(split)
        if truth_file is None:
            continue
        scorer = Scorer(
            ontology, read_truth(truth_file, ontology), prepared.ia, params["evaluate"]["threshold_step"]
        )  # truth prepared once
        for name in [*cfg["members"], "ensemble"]:
            path = root / name / f"{split}.npz"
            if path.is_file():
                out.setdefault(name, {}).update(flat_metrics(scorer(load_term_matrix(path)), f"{split}_"))
    return out


def encoder_label(params: dict) -> str:
    """The encoder the cached embeddings were made with (the last `embed` run's index; params.yaml may name another)."""
    from cafa_mlflow.embed import load_embeddings
    from cafa_mlflow.embed.resolve import read_index

    index = read_index(params["embed"]["out"])
    if "train" not in index:  # no embeddings: the table holds no embedding-based member
        return "none"
    return load_embeddings(index["train"]).manifest.get("model_label", "?")


def table(rows: dict[str, dict[str, float]]) -> str:
    cols = [f"{s}_f_w_{a}" for s in ("val", "test") for a in (*ASPECTS, "mean")]
    head = "| method | " + " | ".join(c.replace("_f_w_", " ") for c in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for name, m in rows.items():
        cells = [f"{m[c]:.3f}" if c in m else "–" for c in cols]
        lines.append(f"| {'**ensemble**' if name == 'ensemble' else name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=None, help="parameter file (default: params.yaml)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    params = load_params(args.params)
    body = table(scores(params))
    print(body)
    if not args.no_write:
        prep = params["prepare"]
        encoder = encoder_label(params)
        write_section(
            f"{SECTION}\n\nWeighted F-max (cafa_mlflow.evaluation.scorer, IA from the prepared data). Machine: {os.cpu_count()} "
            f"CPU cores ({platform.machine()}), date {datetime.date.today().isoformat()}; data: prepare.subsample="
            f"{prep['subsample']}, test_subsample={prep['test_subsample']}, encoder {encoder} (read from the embedding cache manifest; `tiny:` = random weights made by "
            "`cafa make-tiny-esm`, offline); commands `make main` (`make main ESM=tiny` offline), then "
            f"`python benchmarks/members_vs_ensemble.py`. Validation is the homology-aware split (no training hit >= 40 % identity); the ensemble weights and the neural member's early stopping and thresholds are fitted on it, so those two val numbers are optimistic, and the test set (never fitted on) is the result. Reference on the same test set: 0.95 DIAMOND + 0.05 naive = 0.401 (../shared/docs/CAFA.md).\n\n{body}\n"
        )


if __name__ == "__main__":
    main()
