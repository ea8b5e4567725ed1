"""Members are data: the registry's MEMBER_STEPS is the one list of members; the chain, MLproject and dvc.yaml
must list the same ones (and every file a DVC stage depends on must exist)."""

from __future__ import annotations

from pathlib import Path

import yaml

from cafa_mlflow.config.schema import load_config
from cafa_mlflow.predictors.base import Predictor
from cafa_mlflow.predictors.registry import MEMBER_STEPS, PREDICTORS, predictor_class
from cafa_mlflow.workflows.chain import STEPS

REPO = Path(__file__).resolve().parent.parent


def command(step: tuple[str, ...]) -> str:
    return " ".join(("python -m", f"pipelines.{step[0]}", *step[1:]))


def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_member_is_a_registered_predictor_with_from_params():
    for name in MEMBER_STEPS:
        assert name in PREDICTORS
        cls = predictor_class(name)
        assert issubclass(cls, Predictor) and "from_params" in vars(cls)


def test_chain_fits_every_member_in_registry_order():
    member_steps = [(module, flags) for _, module, flags in STEPS if module in ("member", "train")]
    assert member_steps == [(step[0], tuple(step[1:])) for step in MEMBER_STEPS.values()]


def test_mlproject_has_an_entry_point_per_member_step():
    entry_points = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]
    for name, step in MEMBER_STEPS.items():
        entry = name if step[0] == "member" else step[0]
        assert entry_points[entry]["command"] == command(step), entry


def test_dvc_has_a_stage_per_member_and_the_ensemble_depends_on_all():
    stages = dvc_stages()
    for name, step in MEMBER_STEPS.items():
        stage = name if step[0] == "member" else step[0]
        assert stages[stage]["cmd"] == command(step), stage
        assert f"outputs/predictions/{name}" in str(stages[stage]["outs"])
    for consumer in ("ensemble", "evaluate"):
        deps = set(stages[consumer]["deps"])
        assert {f"outputs/predictions/{name}" for name in MEMBER_STEPS} <= deps, consumer


def test_ensemble_members_are_known_members():
    assert set(load_config(REPO / "params.yaml").ensemble.members) <= set(MEMBER_STEPS)


def test_every_code_dependency_of_a_dvc_stage_exists():
    missing = [
        f"{name}: {dep}"
        for name, stage in dvc_stages().items()
        for dep in stage.get("deps", [])
        if not dep.startswith("outputs/") and not (REPO / dep).exists()
    ]
    assert missing == []
