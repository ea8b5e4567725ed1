"""Size of a registered model with the reference member, and what two versions cost in a local artifact store.

A fitted reference member (its folder: reference.dmnd, labels.npz, annotations.parquet, proteins.parquet, ...) is
logged as a model (`log_go_model`, the OBO of data/sample) and registered twice, as two ensemble versions that share
the member would be, in a temporary sqlite store with a local artifact root. Prints the member's files, the size of
one model version, and the store's size on disk (hard links counted once) after one and two versions, with the
bytes `cafa_mlflow.serving.shared_files` saved.

    .venv/bin/python benchmarks/model_size.py --member outputs/predictions/reference/model
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

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
    parser.add_argument("--member", required=True, help="folder of a fitted reference member (its model/ folder)")
    args = parser.parse_args()
    import mlflow

    member = Path(args.member).resolve()
    print("files of 1 MB or more in the predictor folder:")
    for path in sorted(p for p in member.rglob("*") if p.is_file() and p.stat().st_size >= MB):
        print(f"  {str(path.relative_to(member)):40s} {path.stat().st_size / MB:9.1f} MB")
    with tempfile.TemporaryDirectory(prefix="model-size-") as name:
        tmp = Path(name)
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        root = tmp / "artifacts"
        mlflow.set_experiment(experiment_id=mlflow.create_experiment("size", artifact_location=str(root)))
        first, took = log_version(member, "cafa-go-size")
        one = disk_usage(root)
        version = Path(mlflow.get_logged_model(first.model_id).artifact_location.removeprefix("file://"))
        for path in sorted(p for p in version.rglob("*") if p.is_file() and p.stat().st_size >= MB):
            print(f"  in the version: {str(path.relative_to(version)):50s} {path.stat().st_size / MB:9.1f} MB")
        print(f"one model version: {apparent_size(version) / MB:.1f} MB ({took:.0f} s to log and register)")
        print(f"store after version 1: {one / MB:.1f} MB on disk")
        _, took = log_version(member, "cafa-go-size")
        two, files = disk_usage(root), apparent_size(root / "models")
        print(
            f"store after version 2: {two / MB:.1f} MB on disk ({took:.0f} s): version 2 added {(two - one) / MB:.1f} "
            f"MB; the two versions' files add up to {files / MB:.1f} MB"
        )
        for path in sorted(root.glob("models/*/artifacts/**/reference.dmnd"))[:1]:
            print(f"hard links of {path.name} in the store: {os.stat(path).st_nlink} (two versions + shared-files)")


if __name__ == "__main__":
    main()
