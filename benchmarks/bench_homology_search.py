"""Homology search settings: DIAMOND sensitivity x e-value, chosen on validation, reported beside test.

For each sensitivity, one search at the loosest e-value of validation proteins against the train split's
database and of test proteins against the whole pool's (what the members use), then every tighter e-value
is a filter of those hits. Scores homology alone and 0.95 homology + 0.05 naive (the reference of
docs/cafa.md) with cafa_mlflow.evaluation.scorer; the row with the best validation blend is the
one to ship in params.yaml (homology.sensitivity / homology.evalue).

    make prepare; python benchmarks/bench_homology_search.py [--sensitivities sensitive,ultra-sensitive]
        [--params-file F]   (keys overriding params.yaml, e.g. prepare.out, homology.threads, homology.out)
Prints a table (search seconds: wall and DIAMOND's CPU, user + system) and refreshes the "## Homology search settings" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import sys
import time

from results_md import write_section  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

from cafa_mlflow.config.schema import load_config
from cafa_mlflow.data.diamond import build_db, search
from cafa_mlflow.evaluation.scorer import flat_metrics
from cafa_mlflow.go.finalize import finalize
from cafa_mlflow.go.ontology import ASPECTS, load_obo
from cafa_mlflow.predictors import registry
from cafa_mlflow.predictors.combine.weights import combine
from cafa_mlflow.predictors.homology import hits_to_scores
from cafa_mlflow.predictors.transfer import aspect_root_columns
from cafa_mlflow.workflows.common import bind_encoder_and_load, ensure_prepared, split_scorer, training_set

SECTION = "## Homology search settings"
EVALUES = (1e-5, 1e-3, 1e-2, 1e-1)
FIT_SPLIT = {"val": "train", "test": "pool"}  # validation is scored from the train split, test from the pool


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sensitivities", default="mid-sensitive,sensitive,more-sensitive,very-sensitive,ultra-sensitive")
    ap.add_argument("--params-file", default=None, help="YAML of keys overriding params.yaml")
    args = ap.parse_args()
    params = load_config("params.yaml", params_file=args.params_file)
    prepared, ontology = ensure_prepared(params), load_obo(params.data.obo)
    threads = params.homology.threads or os.cpu_count() or 1
    data = {}
    for split, fit_split in FIT_SPLIT.items():
        naive = registry.build("naive", params, ontology)
        naive.fit(training_set(naive, params, prepared, fit_split))
        labels = prepared.split_labels(fit_split, all_terms=True)
        db = build_db(prepared.train_fasta, params.homology.out, prepared.ids(fit_split), threads)
        data[split] = {
            "naive": naive.predict(bind_encoder_and_load(naive, params, prepared, split)),
            "labels": labels,
            "root_col": aspect_root_columns(labels.terms, ontology),
            "db": db,
            "scorer": split_scorer(prepared, ontology, split, params.evaluate.threshold_step),
        }

    def mean_f(tm, split) -> float:
        return flat_metrics(data[split]["scorer"](finalize(tm, ontology, params.submission)))["f_w_mean"]

    rows = []
    for sensitivity in args.sensitivities.split(","):
        row_hits, seconds, cpu = {}, {}, {}
        for split, d in data.items():
            start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            row_hits[split] = search(
                d["db"], prepared.fasta(split), prepared.ids(split), sensitivity, max(EVALUES), 0, threads
            )
            seconds[split] = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[split] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        for evalue in EVALUES:
            cells = {}
            for split, d in data.items():
                hits = row_hits[split][row_hits[split]["evalue"] <= evalue]
                ids = prepared.ids(split)
                hom = hits_to_scores(
                    hits, ids, d["labels"], False, params.homology.max_target_seqs, root_col=d["root_col"]
                )
                blend = combine(
                    {"h": hom, "n": d["naive"]}, {a: {"h": 0.95, "n": 0.05} for a in ASPECTS}, ontology, ids
                )
                cells[split] = (mean_f(hom, split), mean_f(blend, split), hits["qseqid"].nunique() / len(ids))
            rows.append((sensitivity, evalue, seconds, cpu, cells))
            print(sensitivity, evalue, {s: [round(x, 3) for x in c] for s, c in cells.items()}, flush=True)
    best = max(rows, key=lambda r: r[4]["val"][1])
    lines = [
        "| sensitivity | e-value | search s (val / test) | DIAMOND CPU s (val / test) | proteins with a hit (val / test) "
        "| homology val / test | 0.95 homology + 0.05 naive val / test |",
        "|---|---|---|---|---|---|---|",
    ]
    for sensitivity, evalue, secs, cpu_s, c in rows:
        mark = "**" if (sensitivity, evalue) == best[:2] else ""
        lines.append(
            f"| {mark}{sensitivity}{mark} | {evalue:g} | {secs['val']:.0f} / {secs['test']:.0f} "
            f"| {cpu_s['val']:.0f} / {cpu_s['test']:.0f} "
            f"| {c['val'][2]:.1%} / {c['test'][2]:.1%} | {c['val'][0]:.3f} / {c['test'][0]:.3f} "
            f"| {mark}{c['val'][1]:.3f}{mark} / {c['test'][1]:.3f} |"
        )
    command = " ".join(["python", "benchmarks/bench_homology_search.py", *sys.argv[1:]])
    text = (
        f"{SECTION}\n\n{datetime.date.today()}, {os.cpu_count()} CPU cores (load average {os.getloadavg()[0]:.1f} at "
        f"the end), DIAMOND threads {threads}; `{command}`. "
        "Mean weighted F-max over BPO, CCO, MFO. Validation proteins search the train split, test proteins the "
        "whole pool (train + val), like the members; e-values below the loosest are filters of one search. "
        f"Bold: best validation blend, the setting to ship: homology.sensitivity={best[0]}, homology.evalue={best[1]:g} "
        f"(params.yaml has {params.homology.sensitivity}, {params.homology.evalue:g}).\n\n" + "\n".join(lines) + "\n"
    )
    print(text)
    write_section(text)


if __name__ == "__main__":
    main()
