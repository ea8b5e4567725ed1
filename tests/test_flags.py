"""One flag means one params.yaml key in every command; other blocks' keys need their prefix."""

from __future__ import annotations

import pytest

from cafa_mlflow.config.flags import build_parser, flag_table, parse_params
from cafa_mlflow.config.params_file import flatten, load_params
from cafa_mlflow.config.schema import BLOCKS, Params
from cafa_mlflow.errors import ConfigError

# every `cafa` entry point and its own block (member commands take the predictor's block)
COMMANDS = {
    "prepare": "prepare",
    "embed": "embed",
    "train": "train",
    "tune": "tune",
    "member --predictor naive": "naive",
    "member --predictor homology": "homology",
    "member --predictor knn": "knn",
    "ensemble": "ensemble",
    "evaluate": "evaluate",
    "predict": "predict",
    "main": None,
}
RAW = load_params()
KEYS = {k for k in flatten(RAW) if not k.startswith("tune.space.")}


@pytest.mark.parametrize("command,own", COMMANDS.items())
def test_every_flag_maps_to_exactly_one_key_and_every_key_has_a_flag(command, own):
    table = flag_table(RAW, own)
    assert set(table.values()) == KEYS  # every key reachable, nothing else
    parser, dests = build_parser(f"cafa {command}", "", RAW, own)
    for action in parser._actions:  # argparse itself refuses an option string used twice
        if action.dest in dests:
            assert {table[o] for o in action.option_strings} == {dests[action.dest]}
    for key in KEYS:  # the prefixed forms work in every command, dashes, underscores or MLflow's dot
        section, name = key.split(".", 1)
        for option in (f"--{section}-{name.replace('_', '-')}", f"--{section}_{name}", f"--{key}"):
            assert table[option] == key


def test_short_flags_are_the_own_block_only():
    params, _ = parse_params(
        ["--loss", "focal", "--prepare-out", "X", "--embed.esm_model", "m"], "cafa train", "", "train"
    )
    assert (params.train.loss, params.prepare.out, params.embed.esm_model) == ("focal", "X", "m")
    params, _ = parse_params(["--esm-model", "m", "--strategy", "chunks"], "cafa embed", "", "embed")
    assert (params.embed.esm_model, params.embed.strategy) == ("m", "chunks")


@pytest.mark.parametrize(
    "command,own,flag,named",
    [
        ("cafa train", "train", "--esm-model", "--embed-esm-model"),
        ("cafa train", "train", "--out", "--prepare-out"),
        ("cafa member --predictor homology", "homology", "--predictions", None),
        ("cafa ensemble", "ensemble", "--max-terms", "--submission-max-terms"),
        ("cafa main", None, "--loss", "--train-loss"),
    ],
)
def test_a_flag_of_another_block_is_rejected_naming_the_prefixed_form(command, own, flag, named):
    with pytest.raises(ConfigError) as err:
        parse_params([flag, "1"], command, "", own)
    assert flag in str(err.value) and (named is None or named in str(err.value))


def test_abbreviations_are_not_accepted():
    with pytest.raises(ConfigError, match="unknown flag --los"):
        parse_params(["--los", "focal"], "cafa train", "", "train")


def test_every_block_has_a_schema_that_rejects_unknown_keys_and_wrong_types():
    assert set(RAW) == set(BLOCKS)
    Params.from_dict(RAW)  # the shipped params.yaml is valid
    with pytest.raises(ConfigError, match=r"train\.lossy: unknown key"):
        Params.from_dict({**RAW, "train": {**RAW["train"], "lossy": 1}})
    with pytest.raises(ConfigError, match=r"knn\.k='ten': expected int"):
        Params.from_dict({**RAW, "knn": {**RAW["knn"], "k": "ten"}})
    with pytest.raises(ConfigError, match=r"embed\.strategy='zigzag': use one of balanced"):
        Params.from_dict({**RAW, "embed": {**RAW["embed"], "strategy": "zigzag"}})
    with pytest.raises(ConfigError, match=r"submission\.sig: missing"):
        Params.from_dict({**RAW, "submission": {"max_terms": 1500, "min_score": 0.001}})
    params = Params.from_dict(RAW)
    with pytest.raises(AttributeError):
        params.train.loss = "focal"  # frozen


def test_help_lists_every_flag_with_its_default_and_block(capsys):
    with pytest.raises(SystemExit):
        parse_params(["--help"], "cafa train", "", "train")
    text = capsys.readouterr().out
    assert "train (own block):" in text and "embed:" in text
    assert "--loss V" in text and "train.loss (default: 'bce')" in text
    assert "--embed-esm-model V" in text and "embed.esm_model (default: 'esm2_t6_8M_UR50D')" in text
