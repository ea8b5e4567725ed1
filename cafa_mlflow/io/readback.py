"""Reading back the files the product wrote (manifests and configs as JSON or YAML, parquet tables, numpy
and scipy arrays): a missing file, a corrupt one or a missing key is one InputError naming the file and what
to run, never a traceback.

`reading(path, fix)` is the one mechanism (a context manager around any read of `path`); `read_json`,
`read_yaml`, `read_parquet`, `load_npy` and `load_npz` are the readers built on it. Mappings read from JSON or
YAML are `StoredRecord`s: a missing key raises the same one-line InputError (nested mappings included), so
`config["evidence"]` in a loader needs no check of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cafa_mlflow.errors import ENVIRONMENT_ERRNOS, InputError
from cafa_mlflow.io.read_checks import one_line

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

# what a damaged or foreign file raises in json/yaml/pyarrow/numpy/scipy readers (pyarrow's ArrowInvalid and
# numpy's format errors are ValueErrors; a cut .npz is a BadZipFile; a cut .npy an EOFError)
CORRUPT = (ValueError, TypeError, EOFError, zipfile.BadZipFile, UnicodeDecodeError, IndexError)
DEFAULT_FIX = "re-run the step that wrote it"
_C_DUMPERS = tuple(getattr(yaml, name) for name in ("CSafeDumper", "CDumper") if hasattr(yaml, name))


class StoredRecord(dict):
    """A mapping read from `path`: a missing key is an InputError naming the file (not a KeyError)."""

    def __init__(self, values: dict, path: Path, fix: str) -> None:
        super().__init__(values)
        self.path, self.fix = path, fix

    def __missing__(self, key: object) -> Any:
        raise InputError(f"{self.path}: has no {key!r} entry (written by another version, or edited); {self.fix}.")

    def __reduce__(self) -> Any:  # pickled (Ray, multiprocessing) as the plain dict it holds
        return (dict, (dict(self),))


# written out again (MLflow's MLmodel metadata) as the dict it is, by every YAML dumper (C ones included)
for _dumper in (yaml.representer.SafeRepresenter, yaml.SafeDumper, yaml.Dumper, *_C_DUMPERS):
    _dumper.add_representer(StoredRecord, yaml.representer.SafeRepresenter.represent_dict)


def _records(value: Any, path: Path, fix: str) -> Any:
    if isinstance(value, dict):
        return StoredRecord({k: _records(v, path, fix) for k, v in value.items()}, path, fix)
    if isinstance(value, list):
        return [_records(v, path, fix) for v in value]
    return value


@contextlib.contextmanager
def reading(path: str | os.PathLike, fix: str = DEFAULT_FIX) -> Iterator[Path]:
    """Around a read of `path`: a missing file, a missing key or column, or data that is not what was written
    becomes one InputError naming `path` and `fix` (a command to run). Faults of the machine (permissions,
    I/O errors) pass through to run_cli's own one-line report."""
    path = Path(path)
    try:
        yield path
    except FileNotFoundError as err:
        raise InputError(f"{err.filename or path}: missing; {fix}.") from None
    except KeyError as err:
        raise InputError(f"{path}: has no {err.args[0] if err.args else ''!r} entry; {fix}.") from None
    except OSError as err:
        if err.errno in ENVIRONMENT_ERRNOS:  # the machine's fault: run_cli names the file and the errno
            raise
        raise _damaged(path, err, fix) from None  # pyarrow/zlib report damaged data as errno-less OSErrors
    except CORRUPT as err:
        raise _damaged(path, err, fix) from None


def _damaged(path: Path, err: BaseException, fix: str) -> InputError:
    return InputError(f"{path}: damaged or not the file that was written ({one_line(err)[:200]}); {fix}.")


def read_json(path: str | os.PathLike, fix: str = DEFAULT_FIX) -> Any:
    """A JSON file the product wrote; its mappings are StoredRecords."""
    with reading(path, fix) as p:
        return _records(json.loads(p.read_text(encoding="utf-8")), p, fix)


def read_yaml(path: str | os.PathLike, fix: str = DEFAULT_FIX) -> Any:
    """A YAML file the product (or MLflow) wrote; its mappings are StoredRecords."""
    with reading(path, fix) as p:
        try:
            return _records(yaml.safe_load(p.read_text(encoding="utf-8")), p, fix)
        except yaml.YAMLError as err:
            raise ValueError(one_line(err)) from None


def read_parquet(path: str | os.PathLike, fix: str = DEFAULT_FIX, columns: list[str] | None = None) -> pd.DataFrame:
    """A parquet table the product wrote, with `columns` (all when None) present."""
    import pandas as pd

    with reading(path, fix) as p:
        frame = pd.read_parquet(p, columns=columns)
        for column in columns or ():
            frame[column]  # noqa: B018  (a missing column is a KeyError -> one line naming the file)
        return frame


def load_npy(path: str | os.PathLike, fix: str = DEFAULT_FIX, mmap_mode: str | None = None) -> np.ndarray:
    """A .npy array the product wrote (never pickled objects)."""
    import numpy as np

    with reading(path, fix) as p:
        return np.load(p, mmap_mode=mmap_mode, allow_pickle=False)


def load_npz(path: str | os.PathLike, fix: str = DEFAULT_FIX) -> sp.csr_matrix:
    """A scipy sparse matrix the product wrote (scipy.sparse.save_npz), as CSR."""
    import scipy.sparse as sp

    with reading(path, fix) as p:
        return sp.load_npz(p).tocsr()
