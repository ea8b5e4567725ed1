"""Size of a registered model with the reference member, and what two versions cost in a local artifact store.

A fitted model folder holding a reference member (the main job's ensemble, or the reference member alone: its
reference.dmnd, labels.npz, annotations.parquet, proteins.parquet, ...) is logged as a model (`log_go_model`, the
OBO of data/sample) and registered twice, as two versions sharing the member would be, in a temporary sqlite store
with a local artifact root. Prints the folder's large files, the size of one model version, and the store's size on
disk (hard links counted once) after one and two versions, and writes its RESULTS.md section.

    .venv/bin/python benchmarks/model_size.py --member outputs/predictions/ensemble/model
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench_serving import machine_line  # benchmarks/ (run as `python benchmarks/<file>.py`)
from results_md import write_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MB = 1e6


def disk_usage(folder: Path) -> int:
    """Bytes on disk under `folder`, each hard-linked file counted once (as `du` does)."""
    seen, total = set(), 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def apparent_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def log_version(member: Path, name: str):
    """Log the member as a model and register it; (ModelInfo, seconds)."""
    import mlflow
    import yaml

    from cafa_mlflow.serving.pyfunc import log_go_model

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    start = time.perf_counter()
    with mlflow.start_run():
        info = log_go_model(
            member, ROOT / "data/sample/go-basic.obo.xz", params["submission"], serving=params["serving"]
        )
    mlflow.register_model(info.model_uri, name)
    return info, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--member",
        required=True,
        help="a fitted model folder with a reference member, e.g. outputs/predictions/ensemble/model",
    )
    args = parser.parse_args()
    import mlflow

    member = Path(args.member).resolve()
    lines = ["| file of the model folder (1 MB or more) | MB |", "|---|---|"]
    for path in sorted(p for p in member.rglob("*") if p.is_file() and p.stat().st_size >= MB):
        lines.append(f"| {path.relative_to(member)} | {path.stat().st_size / MB:.1f} |")
    print("\n".join(lines))
    with tempfile.TemporaryDirectory(prefix="model-size-") as name:
        tmp = Path(name)
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        root = tmp / "artifacts"
        mlflow.set_experiment(experiment_id=mlflow.create_experiment("size", artifact_location=str(root)))
        first, took = log_version(member, "cafa-go-size")
        one = disk_usage(root)
        version = Path(mlflow.get_logged_model(first.model_id).artifact_location.removeprefix("file://"))
        size = apparent_size(version)
        _, took2 = log_version(member, "cafa-go-size")
        two, files = disk_usage(root), apparent_size(root / "models")
        links = [os.stat(p).st_nlink for p in sorted(root.glob("models/*/artifacts/**/reference.dmnd"))[:1]]
    table = [
        "| store | MB |",
        "|---|---|",
        f"| one registered version ({took:.0f} s to log and register) | {size / MB:.1f} |",
        f"| store on disk after version 1 | {one / MB:.1f} |",
        f"| two versions, their files added up | {files / MB:.1f} |",
        f"| store on disk after version 2 ({took2:.0f} s; large files shared) | {two / MB:.1f} |",
    ]
    note = f"reference.dmnd has {links[0]} hard links in the store (two versions + shared-files)." if links else ""
    print("\n".join(table), note, sep="\n")
    write_section(
        "## Model size and sharing in the artifact store\n\n"
        f"{date.today().isoformat()}, {machine_line()}; `python benchmarks/model_size.py --member {args.member}`. "
        "The fitted model folder (the main job's ensemble: naive, homology, reference with Swiss-Prot 2014 from "
        "metastudent-data, knn, neural) logged with `log_go_model` and registered twice in a temporary sqlite store with a local artifact root; sizes on disk count hard-linked "
        "files once (`cafa_mlflow/serving/shared_files.py`).\n\n"
        + "\n".join(lines)
        + "\n\n"
        + "\n".join(table)
        + f"\n\n{note}\n"
    )


if __name__ == "__main__":
    main()
