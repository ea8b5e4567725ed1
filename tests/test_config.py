"""params.yaml loading with dotted overrides; pipeline flags named after params keys."""

from __future__ import annotations

import pytest
import yaml

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.config.params_file import block_keys, flatten, load_params, parse_value
from cafa_mlflow.errors import ConfigError


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data": {"obo": "go.obo", "ia": None},
                "train": {"lr": 0.001, "hidden": [64, 32], "loss": "bce"},
                "embed": {"esm_model": "esm2_t6_8M_UR50D", "layer": -1},
            }
        )
    )
    return path


def test_overrides_by_dotted_key(params_file, tmp_path):
    base = load_params(params_file)
    params = load_params(
        params_file, {"train.lr": "1e-4", "train.hidden": "[8, 4]", "data.ia": "IA.tsv", "train.loss": None}
    )  # None = flag not given
    assert params["train"] == {"lr": 1e-4, "hidden": [8, 4], "loss": "bce"}
    assert params["data"]["ia"] == "IA.tsv"
    assert base["train"]["lr"] == 0.001  # defaults untouched
    best = tmp_path / "best.yaml"
    best.write_text("train.lr: 0.01\nembed:\n  layer: 3\n")
    params = load_params(params_file, {"train.lr": 0.5}, params_file=best)
    assert (params["train"]["lr"], params["embed"]["layer"]) == (0.5, 3)  # overrides beat the params file


@pytest.mark.parametrize(
    "key,message",
    [
        ("train.nope", "unknown parameter 'train.nope'"),
        ("nosection.lr", "'nosection' is not a section"),
        ("lr", "unknown parameter 'lr'"),
    ],
)
def test_unknown_keys(params_file, key, message):
    with pytest.raises(ConfigError, match=message):
        load_params(params_file, {key: 1})


def test_missing_files(tmp_path, monkeypatch):
    monkeypatch.delenv("CAFA_PARAMS", raising=False)
    with pytest.raises(ConfigError, match="best.yaml: parameter file not found"):
        load_params(None, params_file=tmp_path / "best.yaml")


def test_parse_value_and_flatten():
    assert [parse_value(v) for v in ("0.1", "true", "null", "[1, 2]", "bce", "", 3)] == [
        0.1,
        True,
        None,
        [1, 2],
        "bce",
        "",
        3,
    ]
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e.f": 3}) == {"a.b": 1, "a.c.d": 2, "e.f": 3}
    # a params file: blocks are one level deep, so a mapping value (tune.space) stays whole
    space = {"ensemble.method": {"type": "categorical", "choices": ["blend", "stacker"]}}
    assert block_keys({"tune": {"space": space, "n_trials": 3}, "train.lr": 0.1}) == {
        "tune.space": space,
        "tune.n_trials": 3,
        "train.lr": 0.1,
    }


@pytest.mark.parametrize("flag", ["--esm-model", "--esm_model"])
def test_pipeline_flags_dash_and_underscore(flag):
    params, _ = parse_params([flag, "esm2_t12_35M_UR50D", "--layer", "5"], "cafa embed", "", own="embed")
    assert (params.embed.esm_model, params.embed.layer) == ("esm2_t12_35M_UR50D", 5)


def test_pipeline_flags_repo_params():
    params, _ = parse_params(["--min-count", "3", "--val_fraction", "0.2"], "cafa prepare", "", own="prepare")
    assert params.prepare.min_count == 3 and params.prepare.val_fraction == 0.2
    assert params.data.obo.endswith("go-basic.obo.xz")
