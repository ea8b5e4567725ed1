"""The product never replaces a folder it did not make, swaps folders atomically (a kill at any
step leaves the whole old or the whole new folder), refuses damaged data by checksum (and `embed` repairs
it), checks every parameter on entry and stops at once on a dead tracking server."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import numpy as np
import pytest
from cafa_fixtures import snapshot, write
from esm_fixtures import embed, one_torch_thread, write_fasta  # noqa: F401 (fixture)
from predictor_fixtures import TERMS, labels

from cafa_mlflow.config.schema import BLOCKS, block_class, load_config
from cafa_mlflow.data.prepared import prepare_dataset
from cafa_mlflow.embed import cache, load_embeddings, make_tiny_esm
from cafa_mlflow.errors import ConfigError, InputError, OutputError
from cafa_mlflow.go.labels import load_term_matrix
from cafa_mlflow.io.text import atomic_dir
from cafa_mlflow.predictors.base import Predictor, TrainSet
from cafa_mlflow.predictors.naive import NaivePredictor

REPO = Path(__file__).resolve().parent.parent
PREP = {"subsample": 0, "test_subsample": 0, "min_count": 1, "top_k": 0, "val_fraction": 0.0, "split": "random"}
PREP.update({"split_min_identity": 40, "split_max_evalue": 0.001, "seed": 0})
MISSING_DATA = {k: "/nonexistent/x" for k in ("obo", "train_terms", "train_fasta")}


def user_folder(path: Path) -> Path:
    write(path / "thesis.tex", "a user's file\n")
    return path


# 1. only its own outputs are replaced ------------------------------------------------------------------


def test_prepare_keeps_a_users_folder_and_stops_before_any_work(tmp_path):
    out = user_folder(tmp_path / "mine")
    before = snapshot(tmp_path)
    # the inputs do not exist: an OutputError (not an InputError) shows that nothing was read first
    with pytest.raises(OutputError, match=rf"^{out}: holds files this step did not write"):
        prepare_dataset(MISSING_DATA, PREP, out)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("step", ["member", "ensemble", "train", "prepare"])
def test_every_step_refuses_a_users_out_folder_before_work(tmp_path, monkeypatch, step):
    from cafa_mlflow.workflows import ensemble, member, prepare, train

    monkeypatch.chdir(tmp_path)
    params = load_config(
        overrides={"outputs.predictions": str(tmp_path / "pred"), "prepare.out": str(tmp_path / "pred" / "prep")}
    )
    user_folder(tmp_path / "pred" / {"member": "naive", "ensemble": "ensemble", "train": "neural"}.get(step, "prep"))
    before = snapshot(tmp_path)
    run = {
        "member": lambda: member.fit_member("naive", params),
        "ensemble": lambda: ensemble.fit_ensemble(params, register=False),
        "train": lambda: train.train_neural(params, register=False),
        "prepare": lambda: prepare.prepare_and_describe(params),
    }[step]
    for module in (ensemble, member, train):  # the refusal comes before the prepared data is even read
        monkeypatch.setattr(module, "ensure_prepared", lambda p: pytest.fail("work started"))
    with pytest.raises(OutputError, match="holds files this step did not write"):
        run()
    assert snapshot(tmp_path) == before


def test_atomic_dir_replaces_only_marked_or_empty_folders(tmp_path):
    from cafa_mlflow.io import outputs

    mine = user_folder(tmp_path / "mine")
    with pytest.raises(OutputError, match=f"^{mine}: holds files"):
        with atomic_dir(mine) as folder:
            (folder / "x").write_text("new")
    assert snapshot(tmp_path) == {"mine/thesis.tex": b"a user's file\n"}  # no temporary left either
    (tmp_path / "empty").mkdir()
    for _ in range(2):  # an empty folder, then the product's own (marked) one
        with atomic_dir(tmp_path / "empty") as folder:
            (folder / "x").write_text("new")
    assert outputs.is_marked(tmp_path / "empty") and (tmp_path / "empty" / "x").read_text() == "new"


@pytest.mark.parametrize("path", ["/", "/etc", "/usr", "~", "."])
def test_dangerous_paths_are_refused_clearly(tmp_path, monkeypatch, path):
    from cafa_mlflow.io import outputs

    monkeypatch.chdir(tmp_path)
    target = Path(path).expanduser()
    with pytest.raises(OutputError, match="choose another --out"):
        outputs.check_replaceable(target)
    with pytest.raises(OutputError, match="is (the|a) "):
        prepare_dataset(MISSING_DATA, PREP, target)


@pytest.mark.parametrize("path", ["/etc/passwd", "/usr/share/sub.tsv", "/dev/null"])
def test_file_outputs_in_system_folders_are_refused(path):
    from cafa_mlflow.io.text import atomic_write, check_writable

    with pytest.raises(OutputError, match=f"^{path}: is inside a system folder"):
        check_writable(path)
    with pytest.raises(OutputError, match=f"^{path}: is inside a system folder"):
        with atomic_write(path) as handle:
            handle.write("x")


def test_leftovers_without_marker_or_of_live_processes_are_kept(tmp_path):
    from cafa_mlflow.io import outputs

    final = tmp_path / "member"
    foreign = user_folder(tmp_path / f".member.cafa-{2**22 + 7}-abcd")  # our name pattern, a user's content
    live = tmp_path / f".member.cafa-{os.getpid()}-beef"
    live.mkdir()
    outputs.write_marker(live)
    dead = tmp_path / f".member.cafa-{2**22 + 9}-cafe"
    write(dead / "val.npz", "partial")
    outputs.write_marker(dead)
    assert outputs.clean_leftovers(final) == [dead]
    assert foreign.is_dir() and live.is_dir() and not dead.exists()


# 6. folder swaps are atomic ------------------------------------------------------------------------------

KILLER = """
import os, sys
from pathlib import Path
from cafa_mlflow.io import outputs
from cafa_mlflow.io.text import atomic_dir
final, step, fallback = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
if fallback:
    outputs._exchange = lambda a, b: False
outputs.after_step = lambda name: os._exit(9) if name == step else None
with atomic_dir(final) as tmp:
    for name in ("a", "b", "c"):
        (tmp / name).write_text("new")
        if step == "half-filled" and name == "b":
            os._exit(9)
"""
STEPS = ["temp-made", "half-filled", "filled", "sealed", "exchanged", "old-removed"]
FALLBACK_STEPS = ["sealed", "moved-aside", "renamed", "old-removed"]


def versions(final: Path) -> set[str]:
    return {(final / name).read_text() for name in ("a", "b", "c") if (final / name).exists()}


@pytest.mark.parametrize(
    "step,fallback", [(s, False) for s in STEPS] + [(s, True) for s in FALLBACK_STEPS], ids=lambda v: str(v)
)
def test_a_kill_at_any_step_of_a_swap_leaves_the_whole_old_or_new_folder(tmp_path, step, fallback):
    from cafa_mlflow.io import integrity, outputs

    final = tmp_path / "member"
    with atomic_dir(final) as folder:
        for name in ("a", "b", "c"):
            (folder / name).write_text("old")
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLER), str(final), step, "1" if fallback else "0"], env=env
    )
    assert done.returncode == 9
    if not (fallback and step == "moved-aside"):  # renameat2: at every instant
        assert versions(final) in ({"old"}, {"new"}) and len(list(final.glob("[abc]"))) == 3
        integrity.verify_folder(final)  # and it is the sealed folder, not a mix
    outputs.clean_leftovers(final)  # what the next run of the step does first
    assert versions(final) in ({"old"}, {"new"}) and len(list(final.glob("[abc]"))) == 3
    assert not [p.name for p in tmp_path.iterdir() if p.name != "member"]  # no leftovers remain
    with atomic_dir(final) as folder:  # and the next run replaces it normally
        (folder / "a").write_text("next")
    assert (final / "a").read_text() == "next" and sorted(p.name for p in tmp_path.iterdir()) == ["member"]


# 2. integrity: checksums recorded when written, checked when read -----------------------------------------


def flip(path: Path, offset: int = -64, n: int = 64) -> None:
    data = bytearray(path.read_bytes())
    start = len(data) + offset if offset < 0 else offset
    for i in range(start, start + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


EMBED = dict(layer=-1, strategy="balanced", pooling="mean", device="cpu", shard_size=2, progress=False)


@pytest.mark.parametrize("damage", [flip, truncate, os.remove])
def test_damaged_embedding_shard_is_named_and_embed_repairs_it(tmp_path, damage):
    ckpt = make_tiny_esm(tmp_path / "esm2_tiny.pt", layers=1, dim=16, heads=2, seed=0)
    fasta = write_fasta(tmp_path / "x.fasta", {f"P{i}": "MKTAYIAKQRQISFVK"[: 5 + i] for i in range(6)})
    first = embed(fasta, ckpt, tmp_path / "emb", **EMBED)
    good = np.asarray(load_embeddings(first.cache_dir).vectors).copy()
    shard = first.cache_dir / cache.shard_name(1)
    damage(shard)
    with pytest.raises(InputError, match=rf"^{shard}: damaged \(.*\); run `cafa embed` again"):
        load_embeddings(first.cache_dir)
    again = embed(fasta, ckpt, tmp_path / "emb", **EMBED)
    assert again.stats["n_repaired_shards"] == 1 and again.stats["n_computed"] == 2  # one shard of 2 proteins
    np.testing.assert_array_equal(np.asarray(load_embeddings(again.cache_dir).vectors), good)
    assert embed(fasta, ckpt, tmp_path / "emb", **EMBED).stats["n_repaired_shards"] == 0


def test_damaged_member_predictions_and_models_are_named(tmp_path):
    from predictor_fixtures import tiny_ontology

    from cafa_mlflow.workflows.common import write_member

    onto = tiny_ontology(tmp_path)
    y = labels(["A", "B"], [[TERMS[0], TERMS[1]], [TERMS[5]]])
    predictor = NaivePredictor(onto).fit(TrainSet(ids=["A", "B"], labels=y))
    out = write_member(tmp_path / "pred" / "naive", predictor, {"val": y}, {"val_f": 0.5})
    assert load_term_matrix(out / "val.npz").proteins == ["A", "B"]
    flip(out / "val.npz", offset=40, n=8)
    with pytest.raises(InputError, match=rf"^{out / 'val.npz'}: damaged \(sha256 checksum differs"):
        load_term_matrix(out / "val.npz")
    model_file = next(p for p in (out / "model").iterdir() if p.suffix == ".npz")
    truncate(model_file, 10)
    with pytest.raises(InputError, match=rf"^{model_file}: damaged \(short file: 10 of \d+ bytes\)"):
        Predictor.load(out / "model")
    model_file.unlink()
    with pytest.raises(InputError, match=rf"^{model_file}: damaged \(file missing\)"):
        Predictor.load(out / "model")


def test_damaged_prepared_data_is_named(tmp_path):
    from cafa_fixtures import hand_made_data

    from cafa_mlflow.data.prepared import load_prepared

    prepare_dataset(hand_made_data(tmp_path / "raw"), PREP, tmp_path / "prep")
    flip(tmp_path / "prep" / "labels.npz", offset=40, n=4)
    with pytest.raises(InputError, match=r"labels.npz: damaged .*run `cafa prepare` again"):
        load_prepared(tmp_path / "prep")


# 3. every parameter checked on entry ------------------------------------------------------------------------


def violations(limits: dict, hint) -> list:
    """One value just outside each side of a field's range."""
    is_int = int in (typing.get_args(hint) or (hint,))
    step = 1 if is_int else 0.5
    side = {"ge": lambda b: b - step, "gt": lambda b: b if is_int else b - step, "le": lambda b: b + step}
    values = [side.get(k, lambda b: b)(bound) for k, bound in limits.items()]
    return values if is_int else [float(v) for v in values]


def numeric(hint) -> bool:
    return any(t in (int, float) for t in (typing.get_args(hint) or (hint,)))


def test_every_numeric_field_declares_a_range_and_rejects_values_outside_it():
    checked = 0
    for section in BLOCKS:
        cls = block_class(section)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not numeric(hints[f.name]):
                continue
            assert "range" in f.metadata, f"{section}.{f.name}: numeric without bounds(...)"
            limits = f.metadata["range"]
            if not limits:  # declared unbounded on purpose (e.g. embed.layer: -1 = last)
                continue
            for value in violations(limits, hints[f.name]):
                with pytest.raises(ConfigError) as err:
                    load_config(overrides={f"{section}.{f.name}": value})
                message = str(err.value)
                assert f"{section}.{f.name}={value!r}: out of range" in message and "\n" not in message, message
                assert message.startswith("command line: ")
                checked += 1
    assert checked >= 90  # every declared bound of every block, both sides


def test_folds_k_one_and_oof_without_folds_are_refused():
    with pytest.raises(ConfigError, match=r"folds.k=1: one fold holds no protein out"):
        load_config(overrides={"folds.k": 1})
    params = load_config(overrides={"folds.k": 0, "ensemble.fit_on": "oof"})
    with pytest.raises(ConfigError, match=r"folds.k=0: ensemble.fit_on=oof needs"):
        params.require_oof()
    load_config(overrides={"folds.k": 0, "ensemble.fit_on": "val"}).require_oof()


def test_negative_learning_rate_stops_train_before_any_work(tmp_path, monkeypatch, capsys):
    from cafa_mlflow.console import run_entry
    from pipelines import train

    monkeypatch.setattr(train, "train_neural", lambda *a, **k: pytest.fail("work started"))
    monkeypatch.setattr(train.runs, "start_run", lambda *a, **k: pytest.fail("run opened"))
    assert run_entry(train.main, ["--lr", "-0.001"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: command line: train.lr=-0.001: out of range; use a value > 0."]


BAD_YAML = "train:\n  lr: 0.1\n   batch_size: 3\n"


@pytest.mark.parametrize("argv_extra", [["--help"], []])
def test_yaml_syntax_error_in_params_yaml_is_one_line_with_file_and_line(tmp_path, capsys, argv_extra):
    from cafa_mlflow.console import run_entry
    from pipelines import train

    bad = write(tmp_path / "params.yaml", BAD_YAML)
    assert run_entry(train.main, ["--params", str(bad), *argv_extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}:3:") and "YAML syntax error" in err and "fix that line" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_params_file_errors_name_that_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'best.yaml'}:3:"):
        load_config(params_file=write(tmp_path / "best.yaml", BAD_YAML))
    typed = write(tmp_path / "typed.yaml", "train:\n  dropout: 0.1\n  lr: fast\n")
    with pytest.raises(ConfigError, match=rf"^{typed}:3: train.lr='fast': expected float"):
        load_config(params_file=typed)
    ranged = write(tmp_path / "ranged.yaml", "knn:\n  k: 0\n")
    with pytest.raises(ConfigError, match=rf"^{ranged}:2: knn.k=0: out of range; use a value >= 1"):
        load_config(params_file=ranged)


# 4. fail fast on an unreachable tracking server -------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_tracking_server_is_one_line_at_start(monkeypatch, capsys):
    from cafa_mlflow.console import run_entry
    from pipelines import train

    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # old code: fails at once too, but unnamed
    monkeypatch.setattr(train, "train_neural", lambda *a, **k: pytest.fail("work started"))
    assert run_entry(train.main, []) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: MLflow tracking server {uri} is unreachable") and "mlflow server" in err
    assert len(err.splitlines()) == 1 and "Retry" not in err
