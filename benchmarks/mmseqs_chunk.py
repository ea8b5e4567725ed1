"""The two MMseqs2 member searches at Kaggle's full shape, on chunks, through the product's own calls
(`SearchEngine.prepare` / `SearchEngine.search`, params.yaml's engine settings): homology (-s 7.5, no k-mer index,
as the chain fits it) of the first N test proteins against the first M training proteins, and the reference
(-s 5.7, its index in the user cache) of the same queries against the prepared 516k-protein reference. Each step
runs in its own process under GNU time (CPU of Python and the aligners, wall, peak RSS); the fixed costs (DIAMOND
database, MMseqs2 database, a 1-query search) are steps of their own, so that a chunk's per-query cost is its
difference to the 1-query search. The vote steps time the members' own work on the largest chunk's saved hits
(homology's vote; the saved reference member's predict with its search answered from the hits).

Needs Kaggle-shaped data (`benchmarks/kaggle_shape.py --train 82404 --out outputs/bench/kaggle_full`) and a
prepared reference whose MMseqs2 index is built (any chain run with `reference.engine: mmseqs2`; the index is
reused, never built here: `--reference` names the folder holding reference.dmnd). Prints a table and refreshes its
section of RESULTS.md.

    nice -n 5 python benchmarks/mmseqs_chunk.py --data outputs/bench/kaggle_full \
        --reference /work/final2/outputs/reference/reference-6c70c1cf6968d914 \
        --model /work/final2/outputs/predictions/ensemble/model/members/reference \
        --db 82404 49443 --queries 500 2000
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import pandas as pd
from results_md import write_section  # benchmarks/ modules (run as `python benchmarks/<file>.py`)
from timed import run_timed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECTION = "## MMseqs2 search chunks at full shape"
REFERENCE_SIZE = 516_258  # proteins of the prepared Swiss-Prot 2014 reference
STEP_NAMES = {
    "makedb": "diamond makedb",
    "createdb": "mmseqs createdb",
    "vote-homology": "vote",
    "vote-reference": "vote",
}


def _engine(block: str):
    """The member block of params.yaml and its search engine."""
    from cafa_mlflow.config.params_file import load_params
    from cafa_mlflow.config.schema import Params
    from cafa_mlflow.data.search_engine import SearchEngine

    params = getattr(Params.from_dict(load_params(ROOT / "params.yaml")), block)
    return SearchEngine.from_block(params), params


def _report(hits: pd.DataFrame) -> None:
    print(f"RESULT {len(hits)} {hits['qseqid'].nunique() if len(hits) else 0}")


def worker(step: str, arg: str, cache: Path, threads: int) -> None:
    """One measured step: makedb / createdb / homology of a training subset FASTA (`arg`: train-M.fasta, with
    homology `<train FASTA>:<query FASTA>`), or reference (`arg`: `<reference folder>:<query FASTA>`)."""
    from cafa_mlflow.data.diamond import FEATURE_COLUMNS, build_db, hit_columns

    engine, block = _engine("reference" if step == "reference" else "homology")
    if step == "reference":
        folder, queries = arg.split(":")
        db = Path(folder) / "reference.dmnd"
        key = _index_key(db, engine)
        index = engine.prepare(db, None, threads, block.executable)  # the user cache's index
        assert key[:16] in str(index), f"index {index} is not the cached one ({key[:16]})"
    else:
        train, _, queries = arg.partition(":")
        dmnd = build_db(train, cache, None, threads, block.executable)
        if step == "makedb":
            return print("RESULT 0 0")
        index = engine.prepare(dmnd, cache, threads, block.executable, index=False)  # as HomologyPredictor.fit
        if step == "createdb":
            return print("RESULT 0 0")
    columns = hit_columns(FEATURE_COLUMNS)
    hits = engine.search(
        index, queries, None, block.sensitivity, block.evalue, 0, threads, block.executable, columns=columns
    )
    (cache / "hits").mkdir(exist_ok=True)  # kept for the votes' timing (a fraction of a second to write)
    hits.to_parquet(cache / "hits" / f"{Path(queries).stem}-{step}-{Path(arg.split(':')[0]).stem}.parquet")
    _report(hits)


class SavedHits:
    """A search engine that answers with hits searched before (the vote's own time, without the search)."""

    def __init__(self, hits: pd.DataFrame) -> None:
        self.hits = hits

    def search(self, *args, **kwargs) -> pd.DataFrame:
        return self.hits.copy()


def vote_worker(member: str, arg: str) -> None:
    """CPU s of the member's work on a chunk's saved hits, in this process: homology's `hits_to_scores` over the
    propagated labels of the Kaggle-shaped training proteins (`arg`: `<hits>:<data folder>`), or the reference
    member's whole predict with the search answered from the hits (`arg`: `<hits>:<saved member>:<query FASTA>`)."""
    import time

    from cafa_mlflow.io.fasta import read_fasta
    from cafa_mlflow.predictors.base import Predictor, ProteinSet

    hits_path, source, *rest = arg.split(":")
    hits = pd.read_parquet(hits_path)
    if member == "homology":
        from cafa_mlflow.go.annotations import resolve_terms
        from cafa_mlflow.go.labels import label_matrix
        from cafa_mlflow.go.ontology import load_obo
        from cafa_mlflow.io.terms import read_terms
        from cafa_mlflow.predictors.homology import hits_to_scores
        from cafa_mlflow.predictors.transfer import aspect_root_columns

        data = Path(source)
        ontology = load_obo(data / "Train" / "go-basic.obo")
        ids = [r.id for r in read_fasta(data / "Train" / "train_sequences.fasta")]
        labels = label_matrix(resolve_terms(read_terms(data / "Train" / "train_terms.tsv"), ontology), ontology, ids)
        _, block = _engine("homology")
        queries = list(pd.unique(hits["qseqid"]))
        start = time.process_time()
        root_col = aspect_root_columns(labels.terms, ontology)
        hits_to_scores(hits, queries, labels, block.exclude_self, block.max_target_seqs, root_col=root_col)
    else:
        predictor = Predictor.load(source)
        predictor.set_threads(1)
        predictor.engine = SavedHits(hits)
        queries = [r.id for r in read_fasta(rest[0])]
        start = time.process_time()
        predictor.predict(ProteinSet(queries, fasta=Path(rest[0])))
    print(f"RESULT {len(hits)} {hits['qseqid'].nunique()} {time.process_time() - start:.2f}")


def _index_key(db: Path, engine) -> str:
    from cafa_mlflow.data.mmseqs import index_key, mmseqs_binary

    return index_key(db, engine.mmseqs_sensitivity, mmseqs_binary(engine.mmseqs_executable))


def write_subsets(data: Path, out: Path, dbs: list[int], queries: list[int]) -> dict[str, Path]:
    """The first M training and first N test proteins of the Kaggle-shaped data as plain FASTA files."""
    from cafa_mlflow.io.fasta import read_fasta, write_fasta

    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, source, sizes in (
        ("train", data / "Train" / "train_sequences.fasta", dbs),
        ("queries", data / "Test" / "testsuperset.fasta", [*queries, 1]),
    ):
        records = [(r.id, r.sequence) for _, r in zip(range(max(sizes)), read_fasta(source))]
        for n in sizes:
            paths[f"{kind}-{n}"] = out / f"{kind}-{n}.fasta"
            if not paths[f"{kind}-{n}"].is_file():
                write_fasta(paths[f"{kind}-{n}"], records[:n])
    return paths


def plan(args: argparse.Namespace, paths: dict[str, Path]) -> list[tuple]:
    """(member, database proteins, queries, step, worker argument) in the order they run."""
    steps, largest = [], max(args.queries)
    for m in args.db if "search" in args.steps else []:
        train = paths[f"train-{m}"]
        steps += [("homology", m, 0, "makedb", str(train)), ("homology", m, 0, "createdb", str(train))]
        steps += [("homology", m, n, "homology", f"{train}:{paths[f'queries-{n}']}") for n in [1, *args.queries]]
    if "search" in args.steps:
        ref = args.reference
        steps += [
            ("reference", REFERENCE_SIZE, n, "reference", f"{ref}:{paths[f'queries-{n}']}") for n in [1, *args.queries]
        ]
    if "vote" in args.steps:
        hits = args.cache / "hits" / f"queries-{largest}-homology-train-{max(args.db)}.parquet"
        steps.append(("homology", max(args.db), largest, "vote-homology", f"{hits}:{args.data}"))
        hits = args.cache / "hits" / f"queries-{largest}-reference-{args.reference.name}.parquet"
        queries = paths[f"queries-{largest}"]
        steps.append(("reference", REFERENCE_SIZE, largest, "vote-reference", f"{hits}:{args.model}:{queries}"))
    return steps


def measure(args: argparse.Namespace, member: str, m: int, n: int, step: str, arg: str) -> dict:
    """One table row: the step run in its own process under GNU time (a vote's CPU s: its own, in-process)."""
    worker_args = ["--worker", step, arg, "--cache", str(args.cache), "--threads", str(args.threads)]
    out = run_timed([__file__, *worker_args])
    hits, with_hit, *own_cpu = out["stdout"].split("RESULT ")[-1].split()
    return {
        "member": member,
        "step": STEP_NAMES.get(step, "search"),
        "database proteins": m,
        "queries": n,
        "CPU s": round(float(own_cpu[0]) if own_cpu else out["cpu_s"], 1),
        "wall s": round(out["seconds"], 1),
        "peak GB": round(out["peak_mb"] / 1024, 2),
        "hits": int(hits),
        "queries with a hit": int(with_hit),
        "load": round(os.getloadavg()[0], 1),
    }


def shown(path: Path | None) -> str:
    """A path as the section prints it: relative to the repository when inside it."""
    return str(path.resolve().relative_to(ROOT)) if path and path.resolve().is_relative_to(ROOT) else str(path)


def merged(rows: list[dict], saved: Path) -> pd.DataFrame:
    """This run's rows over those saved by earlier runs (same member, step, sizes: replaced); saved again."""
    key = ["member", "step", "database proteins", "queries"]
    old = pd.read_json(saved, orient="records") if saved.is_file() else pd.DataFrame(columns=key)
    table = pd.concat([old, pd.DataFrame(rows)]).drop_duplicates(key, keep="last")
    table.to_json(saved, orient="records", indent=1)
    return table.reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "outputs" / "bench" / "kaggle_full")
    ap.add_argument("--reference", type=Path, help="the prepared reference folder (reference.dmnd)")
    ap.add_argument("--model", type=Path, help="a saved reference member using that reference (vote step)")
    ap.add_argument("--db", type=int, nargs="+", default=[82404], help="training proteins in the homology database")
    ap.add_argument("--queries", type=int, nargs="+", default=[2000], help="test proteins per chunk")
    ap.add_argument("--steps", nargs="+", choices=("search", "vote"), default=["search", "vote"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=ROOT / "outputs" / "bench" / "mmseqs_chunk")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        if args.worker[0].startswith("vote-"):
            return vote_worker(args.worker[0].removeprefix("vote-"), args.worker[1])
        return worker(args.worker[0], args.worker[1], args.cache, args.threads)
    if args.reference is None or ("vote" in args.steps and args.model is None):
        ap.error("--reference (the prepared reference folder, its MMseqs2 index built) and, to vote, --model")
    load_before = os.getloadavg()[0]
    paths = write_subsets(args.data, args.cache / "fasta", args.db, args.queries)
    rows = []
    for member, m, n, step, arg in plan(args, paths):
        rows.append(measure(args, member, m, n, step, arg))
        print(rows[-1], flush=True)
    table = merged(rows, args.cache / "rows.json")
    print(table.to_string(index=False))
    write_section(
        f"{SECTION}\n\nDate {datetime.date.today()}, {os.cpu_count()} cores, threads {args.threads}, load average "
        f"{load_before:.1f} before, per row after (shared machine: CPU s is the measure). Command: `nice -n 5 python "
        f"benchmarks/mmseqs_chunk.py --data {shown(args.data)} --reference {shown(args.reference)} --model {shown(args.model)} --db "
        f"{' '.join(map(str, args.db))} --queries {' '.join(map(str, args.queries))} --threads {args.threads}`. "
        "Kaggle-shaped data (`benchmarks/kaggle_shape.py`): the first N test proteins against the first M of the "
        "82,404 training proteins (homology, params.yaml's MMseqs2 settings, no k-mer index, as the chain fits "
        "the member) and against the prepared Swiss-Prot 2014 reference (its index in the user cache); each step in "
        "its own process under GNU time, after the steps above it (databases cached). A vote row is the member's "
        "work on the largest chunk's saved hits, CPU s of that call alone: homology's `hits_to_scores` over the "
        "training proteins' propagated labels, the reference member's `predict` (saved member, its search "
        "answered from the hits).\n\n" + table.to_markdown(index=False) + "\n"
    )


if __name__ == "__main__":
    main()
