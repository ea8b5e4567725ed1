"""Fit one member: on the prepared `train` split (scores `val`), cross-fitted over the train split's folds
(`oof`, what the ensemble learns from), and on the whole pool for `test` and the saved model (folds.full_fit)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.text import atomic_dir, check_writable
from cafa_mlflow.predictors import registry
from cafa_mlflow.tracking.run_meta import log_prepared_splits
from cafa_mlflow.workflows.common import (
    bind_encoder_and_load,
    ensure_prepared,
    finish_member,
    member_folder,
    training_set,
    write_member,
)

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params


def fit_member(kind: str, params: Params) -> dict[str, float]:
    """Fit, predict, evaluate and save member `kind` under <outputs.predictions>/<kind>; returns metrics."""
    check_writable(member_folder(params, kind), folder=True, replace=True)
    if why := registry.unavailable(kind, params):  # DVC's stage still needs its folder: a note in it, no predictions
        if (member_folder(params, kind) / "model").is_dir():  # a fitted member is never replaced by a note
            print(f"notice: the {kind} member is skipped ({why}); the one fitted before is kept, unused.")
            return {}
        print(f"notice: the {kind} member is skipped ({why}).")
        with atomic_dir(member_folder(params, kind)) as folder:
            (folder / "SKIPPED").write_text(f"{why}\n")
        return {}
    prepared = ensure_prepared(params)
    log_prepared_splits(prepared)
    ontology = load_obo(params.data.obo)

    def make() -> Any:
        return registry.build(kind, params, ontology)

    predictor = make()
    predictor.fit(training_set(predictor, params, prepared, "train"))
    predictions = {"val": predictor.predict(bind_encoder_and_load(predictor, params, prepared, "val"))}
    features = {"val": predictor.term_features()}  # a search member's hit statistics (learned ensemble)
    predictor, predictions, metrics = finish_member(
        make, predictor, params, prepared, ontology, predictions, features=features
    )
    write_member(member_folder(params, kind), predictor, predictions, metrics, features=features)
    return metrics
