"""Small hand-made inputs for the data-layer tests (an OBO DAG with known answers, writers)."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

# BP: 1 <- 2, 1 <- 3, 4 is_a 2 and part_of 3, 5 is_a 4 (regulates 3: ignored); 6 obsolete; alt_id 40 -> 4.
# CC: 10 <- 11 (11's is_a to the BP root crosses namespaces: dropped). MF: 20 <- 21.
# A non-GO namespace "animal": X:1 <- X:2.
OBO = """format-version: 1.2
data-version: test
default-namespace: gene_ontology

[Term]
id: GO:0000001
name: bp root
namespace: biological_process

[Term]
id: GO:0000002
name: a
namespace: biological_process
is_a: GO:0000001 ! bp root

[Term]
id: GO:0000003
name: b
namespace: biological_process
is_a: GO:0000001

[Term]
id: GO:0000004
name: c
namespace: biological_process
alt_id: GO:0000040
is_a: GO:0000002
relationship: part_of GO:0000003 ! b

[Term]
id: GO:0000005
name: d
namespace: biological_process
is_a: GO:0000004 {source="x"} ! c
relationship: regulates GO:0000003 ! b

[Term]
id: GO:0000006
name: old
namespace: biological_process
is_obsolete: true
replaced_by: GO:0000005

[Term]
id: GO:0000010
name: cc root
namespace: cellular_component

[Term]
id: GO:0000011
name: cc child
namespace: cellular_component
is_a: GO:0000010
is_a: GO:0000001

[Term]
id: GO:0000020
name: mf root
namespace: molecular_function

[Term]
id: GO:0000021
name: mf child
namespace: molecular_function
is_a: GO:0000020

[Term]
id: X:1
name: animal
namespace: animal

[Term]
id: X:2
name: dog
namespace: animal
is_a: X:1

[Typedef]
id: part_of
name: part of
is_transitive: true
"""

BP = ["GO:0000001", "GO:0000002", "GO:0000003", "GO:0000004", "GO:0000005"]

# Annotations with known IA: counts (propagated) 1:4, 2:3, 3:3, 4:2, 5:1, 10:2, 11:1
TERMS_TSV = """EntryID\tterm\taspect
P1\tGO:0000005\tP
P2\tGO:0000002\tP
P3\tGO:0000003\tP
P4\tGO:0000040\tP
P5\tGO:0000011\tC
P6\tGO:0000010\tC
"""


def write(path: Path, text: str) -> Path:
    """Write text, compressed by the suffix (.gz, .xz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = {".gz": gzip.open, ".xz": lzma.open}.get(path.suffix, open)
    with opener(path, "wt", encoding="utf-8") as out:
        out.write(text)
    return path


def hand_made_data(root: Path, **files: Path | None) -> dict[str, Path | None]:
    """params.yaml's data block for the hand-made ontology and terms, six training proteins P1..P6 and no
    other file; `files` adds or replaces entries."""
    return {
        "obo": write(root / "go.obo", OBO),
        "train_terms": write(root / "terms.tsv", TERMS_TSV),
        "train_fasta": write(root / "train.fasta", "".join(f">P{i}\nMKV{'A' * i}\n" for i in range(1, 7))),
        "train_taxonomy": None,
        "test_fasta": None,
        "test_terms": None,
        "ia": None,
        **files,
    }


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes), to assert nothing was written or changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_prepare_writes_nothing(tmp_path: Path, error: str, **files: Path) -> None:
    """Run prepare on the hand-made dataset with some files replaced; it must raise InputError matching
    `error` and leave an existing output folder exactly as it was, with no temporary folder beside it."""
    import pytest

    from cafa_mlflow.data.prepared import prepare_dataset
    from cafa_mlflow.errors import InputError

    root = tmp_path / "good"
    taxonomy = write(root / "tax.tsv", "".join(f"P{i}\t9606\n" for i in range(1, 7)))
    data = hand_made_data(root, **{"train_taxonomy": taxonomy, **files})
    out = tmp_path / "out" / "prepared"
    write(out / "old.txt", "previous outputs")
    write(out / ".cafa-mlflow", "{}\n")  # an earlier prepare's output (it carries the product's marker)
    prep = {
        "subsample": 0,
        "test_subsample": 0,
        "min_count": 1,
        "top_k": 0,
        "val_fraction": 0.0,
        "split": "random",
        "split_min_identity": 40,
        "split_max_evalue": 0.001,
        "seed": 0,
    }
    with pytest.raises(InputError, match=error):
        prepare_dataset(data, prep, out)
    assert snapshot(out.parent) == {"prepared/old.txt": b"previous outputs", "prepared/.cafa-mlflow": b"{}\n"}


def assert_bad_file(tmp_path: Path, read, name: str, text: str, error: str, data_key: str) -> None:
    """`read` raises InputError matching `error` on a file `name` holding `text`; prepare, given that file
    as its `data_key` input, raises the same and writes nothing."""
    import pytest

    from cafa_mlflow.errors import InputError

    path = write(tmp_path / name, text)
    with pytest.raises(InputError, match=error):
        read(path)
    assert_prepare_writes_nothing(tmp_path, error, **{data_key: path})


MLFLOW_RUN_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME")


def forget_mlflow_run(monkeypatch) -> None:
    """Unset the variables through which an outer MLflow run (or an earlier test) would choose the store,
    experiment or run of the code under test."""
    for var in MLFLOW_RUN_VARS:
        monkeypatch.delenv(var, raising=False)
