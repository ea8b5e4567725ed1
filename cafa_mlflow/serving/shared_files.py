"""Model versions share their large files in a local artifact store instead of storing them again.

Every logged model holds a full copy of its members (MLflow copies the artifacts into the store), so two ensemble
versions with the same reference member would store its DIAMOND database, labels and annotation tables (about
240 MB for Swiss-Prot 2014, docs/serving.md) twice. After a model is logged to a store on this machine's disk,
each of its files of at least `MIN_SHARED_BYTES` is content-addressed by its sha256 under
`<experiment artifact root>/shared-files/<sha256>`: the first copy becomes that file (a hard link), later
copies with the same bytes are replaced by hard links to it. Readers see ordinary files (loading, `mlflow
artifacts download`, copying the store elsewhere work as before); deleting a version unlinks only its names.
A store elsewhere (S3, an HTTP tracking server) is left as MLflow wrote it: there each version stores its copy.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from pathlib import Path

from cafa_mlflow.io.integrity import digest

MIN_SHARED_BYTES = 1 << 20  # smaller files (configs, vocabularies) are not worth a hash each
SHARED = "shared-files"
log = logging.getLogger(__name__)


def local_path(location: str) -> Path | None:
    """The folder of an artifact location on this machine (a plain path or file: URI); None elsewhere."""
    if location.startswith("file:"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(location).path))
    if "://" in location:
        return None
    return Path(location)


def share_files(folder: Path, shared: Path, min_bytes: int | None = None) -> int:
    """Hard-link each file of `folder` of at least `min_bytes` (default MIN_SHARED_BYTES) to its
    content-addressed copy in `shared` (made from it when new); the bytes this saved (files stored before)."""
    min_bytes = MIN_SHARED_BYTES if min_bytes is None else min_bytes
    saved = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        size = path.stat().st_size
        if size < min_bytes:
            continue
        blob = shared / digest(path)
        try:
            shared.mkdir(parents=True, exist_ok=True)
            if not blob.exists():
                os.link(path, blob)  # the first copy of these bytes: now also under its hash
                continue
            if os.path.samefile(path, blob) or blob.stat().st_size != size:
                continue
            tmp = path.with_name(path.name + ".cafa-link")
            os.link(blob, tmp)
            os.replace(tmp, path)  # atomic: readers see the old copy or the shared one, never nothing
            saved += size
        except OSError as err:  # another filesystem, no hard links: this file keeps its own copy
            log.warning("%s not shared with earlier model versions (%s)", path, err)
    return saved


def share_logged_model(model_id: str) -> int | None:
    """share_files for a model logged to a local store (None: a remote store, nothing shared)."""
    import mlflow

    root = local_path(mlflow.get_logged_model(model_id).artifact_location)
    if root is None or not root.is_dir():
        return None
    # <experiment artifact root>/models/<model id>/artifacts: one shared folder per experiment
    return share_files(root, root.parents[2] / SHARED)
