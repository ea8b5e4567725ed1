"""Predict reuses what the chain computed: the ensemble step's finalized test scores (`test.npz`) written as the
submission instead of searching and scoring the same proteins again, when provably the same.

What is saved: beside its `test.npz`, the ensemble step writes `test_scores.json` (`record_saved_scores`), the key
the scores were computed under:
- `inputs`: sha256 of the test proteins as the model receives them, the parsed (id, sequence) records in FASTA
  order (`input_digest`). Not the FASTA's bytes: a model sees only ids and sequences (line wrapping, lower case,
  header text after the id, e.g. Kaggle's taxon, change nothing it computes), so Kaggle's testsuperset.fasta and
  the prepared test.fasta holding the same records key alike; the order is part of the key, as the submission
  follows it and the whole-input leakage rules (reference.exclude=queries) see the whole list.
- `model`: the model's content, not its name (`ModelKey`): the sha256 of the predictor folder's checksum list
  (every file of every member: weights, DIAMOND databases, vocabularies, each member's own settings such as
  reference.exclude, io/integrity.py), the OBO's sha256, the submission block the scores were finalized with and
  the embedding settings with the encoder's identity (a local checkpoint's sha256).

When it is reused: `find_reusable` compares that record with the key of the model `cafa predict` loads (read
from the model version's artifacts: its predictor/checksums.json, its OBO, its metadata; the model is not loaded)
and with the FASTA's records; any difference, `predict.reuse: false`, `--evidence` (the per-hit detail is not
saved) or a model whose members read chunk vectors (served one pooled vector each, so served scores differ from
the chain's) computes instead, and the reason is one console line. Predict settings that do not change scores
(batch size, threads, engine) are not part of the key; the submission block of `cafa predict` is applied by the
same writer on both paths. The saved matrix holds every protein of the FASTA, so a shard takes its rows.

The saved scores are the served model's own output: the ensemble finalizes (GO-consistency, term cap, rounding:
go/finalize.py) exactly as GoModel.predict does, and `SavedScores.predict` returns them in GoModel.predict's
output table (serving.pyfunc.to_output), which then goes through the one submission writer
(predict_batches.score_frames), so a reused submission is byte-identical to a computed one."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cafa_mlflow.errors import CafaError
from cafa_mlflow.go.labels import TermMatrix, load_term_matrix
from cafa_mlflow.io.fasta import FastaRecord, load_fasta
from cafa_mlflow.io.integrity import SUMS, digest, verify
from cafa_mlflow.io.text import write_json
from cafa_mlflow.serving.quiet import quiet_downloads

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import SubmissionParams
    from cafa_mlflow.embed.settings import EmbedSettings
    from cafa_mlflow.workflows.predict_job import PredictJob

FORMAT = "cafa-saved-scores/1"
RECORD = "test_scores.json"  # beside the ensemble's test.npz
SCORES = "test.npz"
CHUNKS = "chunks"  # a predictor input served as one pooled vector (serving.pyfunc.input_columns)
log = logging.getLogger(__name__)


def input_digest(records: list[FastaRecord]) -> str:
    """sha256 of the proteins as a model receives them: `id<TAB>sequence` lines in FASTA order, plus
    `<TAB>accession` where a CAFA target header gives one (the reference member's own-entry rule reads it)."""
    h = hashlib.sha256()
    for record in records:
        extra = f"\t{record.accession}" if record.accession else ""
        h.update(f"{record.id}\t{record.sequence}{extra}\n".encode())
    return h.hexdigest()


def folder_identity(folder: str | Path) -> str:
    """sha256 of a sealed folder's checksum list (every file's path, size and sha256): its content identity."""
    files = json.loads((Path(folder) / SUMS).read_text())["files"]
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ModelKey:
    """What decides a model's scores for given proteins (see the module doc)."""

    predictor: str  # folder_identity of the saved predictor
    obo: str  # sha256 of the OBO the model finalizes with
    submission: dict  # the submission block the scores are finalized with
    encoder: dict | None  # EmbedSettings.key("") (encoder identity, layer, strategy ...), None without embeddings
    chunks: bool  # a member reads chunk vectors: served differently, never reused

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def saved_key(
    predictor_folder: Path, obo: str | Path, submission: SubmissionParams, settings: EmbedSettings | None
) -> ModelKey:
    """The key of a predictor saved in `predictor_folder` (sealed), as the ensemble step packages it."""
    meta = json.loads((predictor_folder / "predictor.json").read_text())
    return ModelKey(
        predictor=folder_identity(predictor_folder),
        obo=digest(obo),
        submission=submission.to_dict(),
        encoder=settings.key("") if settings is not None else None,
        chunks=CHUNKS in meta.get("inputs", ()),
    )


def record_saved_scores(folder: Path, records: list[FastaRecord], key: ModelKey) -> None:
    """Write `folder`/RECORD: the key the scores in `folder`/SCORES were computed under."""
    write_json(
        folder / RECORD,
        {"format": FORMAT, "inputs": input_digest(records), "proteins": len(records), "model": key.to_dict()},
        sort_keys=True,
    )


class SavedScores:
    """The finalized scores the chain saved, answering like the served model (GoModel.predict's table)."""

    def __init__(self, scores: TermMatrix, sig: int, records: list[FastaRecord]) -> None:
        self.scores, self.sig, self.records = scores, sig, records

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        from cafa_mlflow.serving.pyfunc import to_output

        return to_output(self.scores.reindex(proteins=frame["protein"].tolist()), self.sig)


@dataclass
class Reuse:
    saved: SavedScores | None  # None: compute
    reason: str  # why (one line)


def find_reusable(job: PredictJob, model_uri: str) -> Reuse:
    """The chain's saved scores when they are provably what `model_uri` computes for the job's FASTA, else
    Reuse(None, why not). Cheap checks first: the model's key, then the FASTA's records."""
    folder = job.reuse_from
    if folder is None:
        return Reuse(None, "predict.reuse is false" if job.evidence is None else "--evidence needs the members' hits")
    record = read_record(folder)
    if record is None:
        return Reuse(None, f"no saved scores with their key in {folder}")
    key = model_key(model_uri)
    if key is None:
        return Reuse(None, f"the content of model {model_uri} cannot be read from its artifacts")
    if record.get("model") != key.to_dict():
        return Reuse(None, f"the scores saved in {folder} are of another model than {model_uri}")
    if key.chunks:
        return Reuse(None, "the model's members read chunk vectors, which the served model pools")
    records = load_fasta(job.fasta)
    if record.get("inputs") != input_digest(records):
        return Reuse(None, f"the scores saved in {folder} are of other proteins than {job.fasta}")
    try:
        scores = load_term_matrix(folder / SCORES)  # checked against the folder's checksums
    except CafaError as err:  # damaged since the chain wrote it: computing gives the same submission
        return Reuse(None, str(err))
    if scores.proteins != [r.id for r in records]:
        return Reuse(None, f"{folder / SCORES} does not hold the proteins its record names")
    saved = SavedScores(scores, int(key.submission["sig"]), records)
    return Reuse(saved, f"the scores saved in {folder} (same proteins, same model)")


def read_record(folder: Path) -> dict | None:
    """The key record beside saved scores, checked against the folder's checksums; None when there are no saved
    scores, no record, or it is damaged (one warning line: predict then computes)."""
    if not (folder / RECORD).is_file() or not (folder / SCORES).is_file():
        return None
    try:
        verify(folder / RECORD)
        record = json.loads((folder / RECORD).read_text())
    except (CafaError, OSError, ValueError) as err:
        log.warning("%s: unreadable (%s); predict computes the scores", folder / RECORD, err)
        return None
    return record if isinstance(record, dict) and record.get("format") == FORMAT else None


def model_key(uri: str) -> ModelKey | None:
    """The key of the logged GoModel at `uri`, read from its artifacts (MLmodel metadata, predictor/checksums.json
    and predictor.json, the OBO, the carried encoder) without loading it; None when it cannot be read."""
    import mlflow

    try:
        info = mlflow.models.get_model_info(uri)
        paths = {name: entry["path"] for name, entry in info.flavors["python_function"]["artifacts"].items()}
        meta = dict(info.metadata or {})
        with tempfile.TemporaryDirectory(prefix="cafa-model-key-") as tmp:

            def get(path: str) -> Path:
                with quiet_downloads():
                    return Path(mlflow.artifacts.download_artifacts(f"{uri.rstrip('/')}/{path}", dst_path=tmp))

            predictor = get(f"{paths['predictor']}/{SUMS}").parent
            get(f"{paths['predictor']}/predictor.json")
            return ModelKey(
                predictor=folder_identity(predictor),
                obo=digest(get(paths["obo"])),
                submission=dict(meta["submission"]),
                encoder=encoder_key(meta.get("embed"), get(paths["encoder"]) if "encoder" in paths else None),
                chunks=CHUNKS in json.loads((predictor / "predictor.json").read_text()).get("inputs", ()),
            )
    except (mlflow.exceptions.MlflowException, CafaError, OSError, KeyError, TypeError, ValueError) as err:
        log.info("cannot read the key of model %s (%s): computing", uri, err)
        return None


def encoder_key(embed: dict | None, encoder: Path | None) -> dict | None:
    """EmbedSettings.key("") of a model's embedding settings, its carried checkpoint (`encoder` folder) in place
    of the path it was fitted with."""
    if not embed:
        return None
    from cafa_mlflow.embed.settings import EmbedSettings
    from cafa_mlflow.serving.pyfunc import encoder_file

    settings = EmbedSettings.from_dict(dict(embed))
    if encoder is not None:
        settings = dataclasses.replace(settings, esm_model=str(encoder_file(encoder)))
    return settings.key("")
