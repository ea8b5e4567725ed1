"""The ending train and ensemble share: the saved member as one registered, self-contained pyfunc model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cafa_mlflow.tracking import run_meta, runs

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params


def package_and_register(
    params: Params,
    out: Path,
    step: str,
    selection: tuple[float, str],
    *,
    register: bool,
    kind: str,
    encoder: str,
    members: Sequence[str] = (),
    **model: Any,
) -> tuple[str, bool] | None:
    """The ending train and ensemble share: the member saved in `out` logged as one self-contained pyfunc model
    (named after the run's `step`; `model`: log_go_model's input_example or predictor) and, with `register`,
    registered under tracking.registered_model, the champion alias moving only when `selection` (validation
    score, split id) beats the champion's. Returns (version, promoted), None when not registered."""
    from cafa_mlflow.serving.pyfunc import log_go_model

    info = log_go_model(
        out / "model",
        params.data.obo,
        params.submission.to_dict(),
        name=run_meta.logged_model_name(step, params.to_dict()),
        embed_runtime=params.embed.to_dict(),
        serving=params.serving.to_dict(),
        **model,
    )
    if not register:
        return None
    score, split_id = selection
    return runs.register_and_promote(
        info.model_uri,
        params.tracking.registered_model,
        score,
        split_id,
        kind=kind,
        members=members,
        encoder=encoder,
    )
