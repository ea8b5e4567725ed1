"""One `mlflow.pyfunc` model for any Predictor (a single member or the ensemble), always finalized for CAFA
(GO-consistent, params.yaml's submission block: term cap, significant figures, minimum score).

Model input: a DataFrame (or `mlflow models serve`'s JSON `dataframe_split` / `dataframe_records`) with
`protein` and `sequence`; the model embeds the sequences itself with the exact embedding settings its
members were fitted on (`embed_settings(model)`: encoder, layer, long-sequence strategy, pooling), so a
client needs no encoder. An `embedding` column (the pooled ESM vector) is optional, for clients that already
have the vectors. A model whose encoder is a local checkpoint carries it as the artifact `encoder`; a
fair-esm name stays a name, loaded through the torch hub cache. Output: protein, term, score, each protein's
terms sorted by score, highest first; with the param `evidence=true` also an `evidence` column (JSON: each
member's score, the training proteins that carried the term, the naive prior, the child a GO-consistent
parent took its score from; `cafa_mlflow.serving.evidence`). With the param `orient="list"` the same answer comes
as one list per column ({"protein": [...], "term": [...], "score": [...]}): half the bytes of the default
one-object-per-row records, and MLflow's server writes it about 6x faster (benchmarks/RESULTS.md, "Serving: where a
request's time goes").

A bad request (missing column, null or spaced id, empty or non-string sequence, a letter ESM-2 cannot encode, a
repeated id, bad params, more than `serving.max_proteins` / `serving.max_residues`) raises RequestError: an
MlflowException with INVALID_PARAMETER_VALUE (HTTP 400 from `mlflow models serve`) that is also an InputError (one
line from `cafa`); `cafa_mlflow.serving.request_checks`. The model carries its code (`code_paths`), pins exactly
the packages it imports and declares DIAMOND in its metadata (`cafa_mlflow.serving.model_environment`): loading it where
DIAMOND is missing fails in one line naming the package to install.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, ParamSchema, ParamSpec, Schema

from cafa_mlflow.config.schema import ServingParams, SubmissionParams
from cafa_mlflow.errors import CafaError, InputError
from cafa_mlflow.go.finalize import finalize
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.text import link_or_copy
from cafa_mlflow.predictors.base import CHUNKS, EMBEDDING, SEQUENCE, Predictor, ProteinSet, read_meta
from cafa_mlflow.serving import model_environment
from cafa_mlflow.serving.evidence import evidence_rows
from cafa_mlflow.serving.quiet import quiet_downloads
from cafa_mlflow.serving.request_checks import (
    ModelError,
    OneLine,
    RequestError,
    SystemRequirementError,
    check_id,
    check_params,
    check_size,
    clean_sequence,
    guard_scoring_server,
)
from cafa_mlflow.serving.shared_files import share_logged_model

__all__ = ["GoModel", "ModelError", "OneLine", "RequestError", "clean_sequence", "log_go_model"]
EXAMPLE_SEQUENCE = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVV"
ENCODER = "encoder"  # artifact: a folder with a local checkpoint and its contact-regression file
RUNTIME_DEFAULTS = {"toks_per_batch": 4096, "device": "auto"}
MODEL_CODE = Path(__file__).with_name("model_code.py")  # what MLflow runs to build the model when it loads it
CONFIG_BLOCKS = ("submission", "embed_runtime", "serving")  # its model_config: GoModel.configure's arguments
log = logging.getLogger(__name__)


def input_columns(needs: set[str]) -> set[str]:
    """Model input columns for a predictor's needs (chunk models are served one pooled vector each)."""
    return {EMBEDDING if n == CHUNKS else n for n in needs}


class GoModel(mlflow.pyfunc.PythonModel):
    """A saved predictor folder (artifact `predictor`), the ontology (artifact `obo`) and, for a local
    checkpoint, the encoder (artifact `encoder`)."""

    def __init__(
        self,
        submission: Mapping[str, Any] | None = None,
        threads: int = 0,
        embed_runtime: Mapping | None = None,
        serving: Mapping[str, Any] | None = None,
    ) -> None:
        self.threads = int(threads)
        self.configure(submission, embed_runtime, serving)

    def configure(
        self, submission: Mapping[str, Any] | None, embed_runtime: Mapping | None, serving: Mapping[str, Any] | None
    ) -> None:
        """The params blocks the model answers with (a logged model gets them from its `model_config`)."""
        # the submission block, validated (None until load_context reads it from the logged model's config)
        self.submission = None if submission is None else SubmissionParams.from_dict(dict(submission))
        self.embed_runtime = {**RUNTIME_DEFAULTS, **dict(embed_runtime or {})}  # token budget, device
        self.serving = None if serving is None else ServingParams.from_dict(serving)  # request limits when served

    def load_context(self, context: Any) -> None:
        """Configure from the logged `model_config` (models-from-code: model_code.py; a model pickled by an older
        version carries its configuration in itself), load the artifacts; ModelError in one line when the machine
        lacks what the model needs outside Python (DIAMOND); when loaded by MLflow's scoring server, check its
        requests first (request_checks)."""
        config = getattr(context, "model_config", None) or {}
        if "submission" in config:
            self.configure(*(config.get(block) for block in CONFIG_BLOCKS))
        folder = context.artifacts["predictor"]
        kinds, mmseqs = model_environment.member_kinds(folder), model_environment.mmseqs_users(folder)
        needs = model_environment.system_requirements(kinds, mmseqs)
        problem = model_environment.system_problem(needs)
        if problem:
            raise SystemRequirementError(problem)
        self.load_artifacts(context.artifacts)
        guard_scoring_server()

    def load_artifacts(self, artifacts: Mapping[str, str]) -> GoModel:
        """Load the ontology and the predictor (also usable without MLflow, e.g. in tests)."""
        self.ontology = load_obo(artifacts["obo"])
        self.predictor = Predictor.load(artifacts["predictor"])
        self.predictor.set_threads(self.threads)
        self.inputs = input_columns(self.predictor.inputs())
        self.settings = self.predictor.embed  # EmbedSettings the members were fitted on (None: no embeddings)
        if self.settings is not None and ENCODER in artifacts:  # the carried checkpoint, wherever the model is
            self.settings = dataclasses.replace(self.settings, esm_model=str(encoder_file(artifacts[ENCODER])))
        self._embedder = None
        return self

    def set_threads(self, threads: int) -> None:
        """CPU threads of external tools (DIAMOND); 0 = all cores."""
        self.threads = int(threads)
        self.predictor.set_threads(self.threads)

    def set_query_set(
        self, ids: Sequence[str], sequences: Sequence[str], accessions: Sequence[str | None] | None = None
    ) -> None:
        """The whole input that the next predict() calls are batches of (Predictor.set_query_set)."""
        self.predictor.set_query_set(ids, sequences, accessions)

    @property
    def embedder(self) -> Any:
        """The encoder of `settings`, loaded at its first use (None when no member reads embeddings)."""
        if self._embedder is None and self.settings is not None:
            from cafa_mlflow.embed.sequences import SequenceEmbedder

            rt = getattr(self, "embed_runtime", RUNTIME_DEFAULTS)  # models pickled before it existed
            self._embedder = SequenceEmbedder(self.settings, int(rt["toks_per_batch"]), str(rt["device"]))
        return self._embedder

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame | dict[str, list]:
        params = check_params(params)
        try:
            proteins = self.parse_input(model_input)
            if not params.get("evidence"):
                return oriented(to_output(self.predict_matrix(proteins), self.submission.sig), params["orient"])
            raw = self.predictor.predict(proteins)
            final = finalize(raw, self.ontology, self.submission)
            out = to_output(final, self.submission.sig)
            out["evidence"] = evidence_rows(out, raw, self.predictor, self.ontology, self.submission.sig, params["top"])
            return oriented(out, params["orient"])
        except (RequestError, ModelError):
            raise
        except InputError as err:  # the request's content (e.g. embeddings of another width): HTTP 400
            raise RequestError(str(err)) from err
        except CafaError as err:  # the model's environment (encoder weights, DIAMOND): one line, HTTP 500
            raise ModelError(str(err)) from err
        except Exception as err:  # a fault of ours: the traceback goes to the server's log, one line to the client
            log.exception("prediction failed")
            raise ModelError(
                f"the model failed on this request ({type(err).__name__}: {err}); see the server log."
            ) from err

    def parse_input(self, frame: pd.DataFrame) -> ProteinSet:
        """The ProteinSet of an input DataFrame, embedded when a member needs vectors the input lacks
        (RequestError naming the row for a missing column, a null or spaced id, a bad sequence, a repeated id)."""
        if not isinstance(frame, pd.DataFrame) or (not len(frame) and not len(frame.columns)):
            raise RequestError("the request holds no proteins; send at least one record with `protein` and `sequence`.")
        if "protein" not in frame:
            raise RequestError(
                "the request lacks the column `protein`; give `protein` and `sequence` for every record."
            )
        ids = [check_id(row, pid) for row, pid in enumerate(frame["protein"])]
        dup = pd.Index(ids)[pd.Index(ids).duplicated()]
        if len(dup):
            raise RequestError(f"protein {dup[0]!r} appears twice in the model input; give each protein once.")
        has_vectors = bool(EMBEDDING in frame and len(frame) and frame[EMBEDDING].notna().all())
        needs_sequence = SEQUENCE in self.inputs or (EMBEDDING in self.inputs and not has_vectors)
        if needs_sequence and SEQUENCE not in frame:
            raise RequestError(
                "the request lacks the column `sequence`; give `protein` and `sequence` (one-letter amino acids)"
                + (", or an `embedding` for every protein." if SEQUENCE not in self.inputs else ".")
            )
        sequences = None
        if SEQUENCE in frame:
            sequences = [clean_sequence(row, pid, seq) for row, (pid, seq) in enumerate(zip(ids, frame[SEQUENCE]))]
        if getattr(self, "serving", None) is not None and in_server():
            check_size(len(ids), sum(map(len, sequences or ())), self.serving)
        embeddings = None
        if EMBEDDING in self.inputs:
            if has_vectors:
                embeddings = np.stack([np.asarray(v, dtype=np.float32).ravel() for v in frame[EMBEDDING]])
            elif not len(frame):
                embeddings = np.zeros((0, self.predictor.embedding_dim() or 0), np.float32)
            else:
                embeddings = self.embed_request(ids, sequences)
        return ProteinSet(ids, embeddings=embeddings, sequences=sequences if SEQUENCE in self.inputs else None)

    def embed_request(self, ids: list[str], sequences: list[str]) -> Any:
        """The request's pooled vectors; a Future of them when the predictor takes pending inputs (an ensemble:
        its search members start while the encoder runs in this background thread)."""
        if not self.predictor.takes_pending_inputs:
            return self.embedder(ids, sequences)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        try:
            return pool.submit(self.embedder, ids, sequences)
        finally:
            pool.shutdown(wait=False)  # the submitted embedding still runs to its end

    def predict_matrix(self, proteins: ProteinSet) -> TermMatrix:
        """Finalized scores of the proteins (rows in input order) over the ontology's terms that score."""
        return finalize(self.predictor.predict(proteins), self.ontology, self.submission)


def in_server() -> bool:
    """Whether MLflow serves this model (`mlflow models serve`, `mlflow models predict`): its flag, set by
    the scoring server; request limits apply there, not to `cafa predict`'s batches."""
    from mlflow.environment_variables import _MLFLOW_IS_IN_SERVING_ENVIRONMENT

    return bool(_MLFLOW_IS_IN_SERVING_ENVIRONMENT.get())


def encoder_file(folder: str | os.PathLike) -> Path:
    """The checkpoint in an `encoder` artifact folder (the .pt file beside its contact-regression file)."""
    found = [p for p in Path(folder).glob("*.pt") if not p.name.endswith("-contact-regression.pt")]
    if len(found) != 1:
        raise InputError(f"{folder}: the model's encoder artifact should hold one checkpoint, found {len(found)}.")
    return found[0]


def oriented(out: pd.DataFrame, orient: str) -> pd.DataFrame | dict[str, list]:
    """The answer as the request asked: the table itself (MLflow's server writes records), or {column: list}."""
    return out if orient == "records" else {c: out[c].tolist() for c in out.columns}


def to_output(tm: TermMatrix, sig: int) -> pd.DataFrame:
    """Long (protein, term, score) table with exactly the scores and order `write_submission` writes: scores
    clipped to [0, 1] and rounded to `sig` decimal places (those that round to 0 dropped), proteins in row order,
    each protein's terms highest first, ties by GO id."""
    coo = tm.matrix.tocoo()
    scale = 10**sig
    q = np.rint(np.clip(coo.data, 0.0, 1.0) * scale).astype(np.int64)  # the same arithmetic as the writer
    keep = q > 0
    rows, cols, q = coo.row[keep], coo.col[keep], q[keep]
    terms = np.asarray(tm.terms, dtype=object)
    term_rank = np.argsort(np.argsort(terms.astype(str), kind="stable"), kind="stable")
    order = np.lexsort((term_rank[cols], -q, rows))
    return pd.DataFrame(
        {
            "protein": np.asarray(tm.proteins, dtype=object)[rows[order]],
            "term": terms[cols[order]],
            "score": q[order] / scale,  # the float64 nearest to the decimal the submission holds
        }
    )


def signature_for(columns: set[str]) -> ModelSignature:
    """protein and sequence in, embedding optional; protein, term, score out (evidence with the param
    `evidence`). `sequence` is declared optional so that the model itself, not MLflow's schema check (whose
    message quotes the whole request over many lines), says in one line what a request lacks: it is needed
    unless the model reads no sequence and every protein comes with an embedding."""
    cols = [ColSpec(DataType.string, "protein"), ColSpec(DataType.string, SEQUENCE, required=False)]
    if EMBEDDING in columns:
        cols.append(ColSpec(Array(DataType.double), EMBEDDING, required=False))  # float32 arrays and lists
    out = [
        ColSpec(DataType.string, "protein"),
        ColSpec(DataType.string, "term"),
        ColSpec(DataType.double, "score"),
        ColSpec(DataType.string, "evidence", required=False),
    ]
    params = ParamSchema(
        [
            ParamSpec("evidence", DataType.boolean, False),
            ParamSpec("top", DataType.long, 3),
            ParamSpec("orient", DataType.string, "records"),
        ]
    )
    return ModelSignature(Schema(cols), Schema(out), params)


def example_input(n: int = 2) -> pd.DataFrame:
    """A small valid input: `n` proteins with fixed sequences (the model embeds them)."""
    return pd.DataFrame(
        {
            "protein": [f"EXAMPLE{i + 1}" for i in range(n)],
            SEQUENCE: [EXAMPLE_SEQUENCE[: len(EXAMPLE_SEQUENCE) - 5 * i] for i in range(n)],
        }
    )


def log_go_model(
    folder: str | os.PathLike,
    obo: str | os.PathLike,
    submission: Mapping[str, Any],
    name: str = "model",
    input_example: pd.DataFrame | None = None,
    predictor: Predictor | None = None,
    embed_runtime: Mapping[str, Any] | None = None,
    serving: Mapping[str, Any] | None = None,
) -> Any:
    """Log the predictor saved in `folder` as one pyfunc model in the active run; returns ModelInfo.

    submission: params.yaml's submission block (max_terms, sig, min_score); embed_runtime: the embed block's
    token budget and device (`toks_per_batch`, `device`) the served model embeds requests with; serving: the
    serving block's per-request limits (None: no limits). Everything the model needs travels with it: its code
    (`code/cafa_mlflow`), the predictor folder (members, DIAMOND database, label vocabulary), the OBO and, when
    the encoder is a local checkpoint, the checkpoint and its contact-regression file; its requirements are
    the packages it imports, pinned, and its metadata names DIAMOND where a member needs it. Without an input
    example, two fixed sequences are used. `predictor` is accepted for callers that hold it."""
    meta = read_meta(folder)
    columns = input_columns(set(meta.get("inputs", ())))
    kinds = model_environment.member_kinds(folder)
    metadata = model_metadata_for(meta, columns, submission, embed_runtime, serving)
    mmseqs = model_environment.mmseqs_users(folder)
    metadata["system_requirements"] = model_environment.system_requirements(kinds, mmseqs)
    artifacts = {"obo": str(obo), "predictor": str(folder)}
    with tempfile.TemporaryDirectory(prefix="cafa-model-") as tmp:
        encoder = carry_encoder(metadata["embed"], Path(tmp))
        if encoder is not None:
            artifacts[ENCODER] = str(encoder)
            metadata["encoder_file"] = Path(metadata["embed"]["esm_model"]).name
        config = copy.deepcopy({block: metadata[block] for block in CONFIG_BLOCKS})  # copies: no YAML anchors
        with quiet_downloads():  # MLflow reloads the logged model to check the input example
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=str(MODEL_CODE),  # models-from-code: no pickle to trust when loading
                model_config=config,
                artifacts=artifacts,
                code_paths=[model_environment.copy_code(Path(tmp) / "code")],
                signature=signature_for(columns),
                input_example=example_input() if input_example is None else input_example,
                metadata=metadata,
                pip_requirements=model_environment.requirements(kinds, embeds=bool(metadata["embed"])),
            )
    share_logged_model(info.model_id)  # versions with the same reference member store its files once
    return info


def model_metadata_for(
    meta: Mapping[str, Any],
    columns: set[str],
    submission: Mapping[str, Any],
    embed_runtime: Mapping[str, Any] | None,
    serving: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The model's metadata (MLmodel `metadata`) from its saved predictor's meta and the params blocks."""
    runtime = {k: v for k, v in dict(embed_runtime or {}).items() if k in RUNTIME_DEFAULTS}
    return {
        # what a request carries: protein and sequence; embedding only instead of embedding inside the model
        "request": {"required": ["protein", SEQUENCE], "optional": [EMBEDDING] if EMBEDDING in columns else []},
        "required_inputs": sorted(columns),  # what the members read (the model embeds when `embedding` is absent)
        "embed": meta.get("embed") or {},
        "kind": meta["kind"],
        "submission": dict(submission),
        "embed_runtime": {**RUNTIME_DEFAULTS, **runtime},
        "serving": None if serving is None else ServingParams.from_dict(serving).to_dict(),
    }


def carry_encoder(embed: Mapping[str, Any], tmp: Path) -> Path | None:
    """A folder `tmp/encoder` holding the local checkpoint the members were fitted with (and its
    contact-regression file); None when the encoder is a fair-esm name (or the model embeds nothing)."""
    from cafa_mlflow.embed.model import is_local_checkpoint, regression_path

    if not embed or not is_local_checkpoint(embed["esm_model"]):
        return None
    checkpoint = Path(embed["esm_model"])
    encoder = tmp / ENCODER
    encoder.mkdir()
    for src in (checkpoint, regression_path(checkpoint)):
        if not src.is_file():
            raise InputError(
                f"{src}: the encoder file the model was fitted with is missing; it must travel with the model."
            )
        link_or_copy(src, encoder / src.name)  # a 3B checkpoint is gigabytes: a hard link where possible
    return encoder


def model_metadata(model: Any) -> dict:
    """User metadata of a model: a PyFuncModel, an mlflow Model or ModelInfo, or a model URI."""
    if isinstance(model, (str, os.PathLike)):
        model = mlflow.models.get_model_info(str(model))
    meta = getattr(model, "metadata", None)
    if isinstance(meta, mlflow.models.Model):
        meta = meta.metadata
    if not isinstance(meta, Mapping) or "required_inputs" not in meta:
        raise InputError(
            "this MLflow model was not logged by cafa_mlflow.serving.pyfunc.log_go_model (no required_inputs in its metadata)."
        )
    return dict(meta)


def required_inputs(model: Any) -> set[str]:
    """Input columns besides `protein` the model needs: a subset of {"embedding", "sequence"}."""
    return set(model_metadata(model)["required_inputs"])


def embed_settings(model: Any) -> dict:
    """The embedding settings (esm_model, layer, strategy, window, stride, pooling, ...) the model was fitted on."""
    return dict(model_metadata(model).get("embed") or {})
