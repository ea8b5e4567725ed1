"""What runs and versions say in the MLflow UI: experiment kind, run names, encoder label, failure reason,
dataset inputs, registry descriptions and tags (one temporary sqlite store for the module)."""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from cafa_fixtures import forget_mlflow_run
from mlflow.tracking import MlflowClient

from cafa_mlflow.config.params_file import load_params
from cafa_mlflow.embed import make_tiny_esm
from cafa_mlflow.errors import InputError
from cafa_mlflow.tracking import run_meta
from cafa_mlflow.tracking import runs as tracking
from cafa_mlflow.tracking.compare import comparison_table, find_runs, format_comparison, metric_keys
from cafa_mlflow.tracking.metric_names import off_vocabulary
from pipelines.cli import main as cafa

pytestmark = pytest.mark.slow  # one sqlite store (~10 s to create on a busy machine)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    mp = pytest.MonkeyPatch()
    forget_mlflow_run(mp)
    mp.setattr(tracking, "_LAUNCHER_EXPERIMENT", None)
    mp.chdir(root)
    tiny = make_tiny_esm(root / "esm2_tiny.pt", layers=1, dim=16, heads=2)
    params = load_params(
        overrides={
            "tracking.uri": f"sqlite:///{root}/mlflow.db",
            "tracking.system_metrics": False,
            "embed.esm_model": str(tiny),
        }
    )
    yield params, root
    mlflow.set_tracking_uri(None)
    mp.undo()


def test_run_names_say_what_a_run_is(store):
    params, _ = store
    with_loss = {**params, "train": {**params["train"], "loss": "focal"}}
    assert run_meta.run_name("train", with_loss) == "train multitask focal tiny:esm2_tiny.pt"
    named = {**params, "embed": {**params["embed"], "esm_model": "esm2_t6_8M_UR50D"}}
    assert run_meta.run_name("embed", named) == "embed balanced esm2_t6_8M_UR50D"
    assert run_meta.run_name("homology", params) == "member homology"
    assert run_meta.run_name("knn", params) == "member knn tiny:esm2_tiny.pt"
    assert run_meta.run_name("ensemble", params) == "ensemble blend naive+homology+knn+neural+reference"
    sub = {**params, "prepare": {**params["prepare"], "subsample": 2500}}
    assert run_meta.run_name("prepare", sub) == "prepare 2500 proteins"
    everything = {**params, "prepare": {**params["prepare"], "subsample": 0}}
    assert run_meta.run_name("prepare", everything) == "prepare all proteins"
    assert run_meta.run_name("main", params) == "main tiny:esm2_tiny.pt"
    assert run_meta.run_name("evaluate", params, "5 predictions") == "evaluate 5 predictions"
    assert run_meta.logged_model_name("ensemble", params) == "ensemble-blend-naive-homology-knn-neural-reference"
    assert run_meta.logged_model_name("train", with_loss) == "train-multitask-focal-tiny-esm2_tiny-pt"


def test_experiment_kind_run_name_and_encoder_in_every_run(store):
    params, _ = store
    with tracking.start_run(params, "main") as parent:
        with tracking.start_run(params, "knn") as child:
            pass
    client = MlflowClient()
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.name == "cafa-mlflow"
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    assert runs[parent.info.run_id].info.run_name == "main tiny:esm2_tiny.pt"
    assert runs[child.info.run_id].info.run_name == "member knn tiny:esm2_tiny.pt"
    assert {r.data.params["encoder"] for r in runs.values()} == {"tiny:esm2_tiny.pt"}


def test_an_existing_experiment_is_marked_once(store):
    params, _ = store
    client = MlflowClient()
    tracking.configure(params)
    experiment_id = client.create_experiment("made-elsewhere")
    run_meta.mark_training_experiment(experiment_id)
    run_meta.mark_training_experiment(experiment_id)
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_failed_run_records_its_reason(store):
    params, _ = store
    with pytest.raises(InputError), tracking.start_run(params, "prepare") as run:
        raise InputError("data/x.tsv:3: bad line\nsecond line")
    failed = MlflowClient().get_run(run.info.run_id)
    assert failed.info.status == "FAILED"
    assert failed.data.tags["error"] == "InputError: data/x.tsv:3: bad line"
    n = params["prepare"]["subsample"]
    assert failed.info.run_name == (f"prepare {n} proteins" if n else "prepare all proteins")


def test_a_launcher_run_gets_the_reason_when_the_entry_point_fails_before_opening_it(store, monkeypatch):
    params, _ = store
    tracking.configure(params)
    run = MlflowClient().create_run(MlflowClient().get_experiment_by_name("cafa-mlflow").experiment_id)
    monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)
    assert run_meta.tag_failure(RuntimeError("no weights offline; run `make main ESM=tiny`")) == run.info.run_id
    tags = MlflowClient().get_run(run.info.run_id).data.tags
    assert tags["error"] == "RuntimeError: no weights offline; run `make main ESM=tiny`"


def test_prepared_splits_are_dataset_inputs(store, tmp_path):
    params, _ = store
    (tmp_path / "test.fasta").write_text(">T1\nMKV\n>T2\nMK\n")
    proteins = pd.DataFrame(
        {"protein": ["A", "B", "C"], "split": ["train", "train", "val"], "taxon": ["9606"] * 3, "length": [5, 6, 7]}
    )
    prepared = SimpleNamespace(root=tmp_path, proteins=proteins, split_id="abc123", test_fasta=tmp_path / "test.fasta")
    with tracking.start_run(params, "train") as run:
        digests = run_meta.log_prepared_splits(prepared)
    inputs = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    by_name = {i.dataset.name: i for i in inputs}
    assert sorted(by_name) == ["test@abc123", "train@abc123", "val@abc123"]
    contexts = {n: {t.key: t.value for t in i.tags} for n, i in by_name.items()}
    assert contexts["train@abc123"] == {"mlflow.data.context": "training", "proteins": "2"}
    assert contexts["val@abc123"]["mlflow.data.context"] == "validation"
    assert contexts["test@abc123"]["proteins"] == "2"
    assert by_name["train@abc123"].dataset.digest == digests["train"] and len(digests["train"]) == 8
    assert '"num_rows": 2' in by_name["train@abc123"].dataset.profile
    assert digests["train"] != digests["val"]


def test_registered_versions_are_described_and_the_alias_is_the_only_champion_record(store):
    params, _ = store
    name = "cafa-go-meta"
    client = MlflowClient()
    versions = []
    for kind, score, members in (("neural", 0.30, ()), ("ensemble", 0.40, ("naive", "knn", "neural"))):
        with tracking.start_run(params, "train"):
            model = mlflow.create_external_model(name=f"{kind}-model")
        versions.append(
            tracking.register_and_promote(
                model.model_uri, name, score, "split0", kind=kind, members=members, encoder="tiny:esm2_tiny.pt"
            )
        )
    assert versions == [("1", True), ("2", True)]
    v2 = client.get_model_version(name, "2")
    assert v2.description == (
        "ensemble of naive+knn+neural on tiny:esm2_tiny.pt: val_f_w_mean=0.4000 on validation split split0"
    )
    assert {k: v2.tags[k] for k in ("kind", "members", "encoder", "val_split", "val_f_w_mean")} == {
        "kind": "ensemble",
        "members": "naive+knn+neural",
        "encoder": "tiny:esm2_tiny.pt",
        "val_split": "split0",
        "val_f_w_mean": "0.400000",
    }
    v1 = client.get_model_version(name, "1")
    assert v1.tags["kind"] == "neural" and "members" not in v1.tags and v1.tags["promoted"] == "true"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"


def test_metric_keys_is_the_union_over_the_experiments_runs(store):
    params, _ = store
    with tracking.start_run(params, "evaluate"):
        tracking.log_metrics({"test_f_w_BPO": 0.3, "seconds": 2.0})
    with tracking.start_run(params, "evaluate"):
        tracking.log_metrics({"test_f_w_BPO": 0.4, "freq_1-5_BPO": 9.0})
    keys = metric_keys(["cafa-mlflow", "no-such-experiment"])
    assert {"test_f_w_BPO", "seconds", "freq_1-5_BPO"} <= keys
    assert off_vocabulary(keys) == ["freq_1-5_BPO"]
    assert metric_keys(["no-such-experiment"]) == set()


def test_compare_newest_train_run_per_loss(store, capsys):
    params, _ = store
    for loss, f_w, seconds in (("bce", 0.2, 5.0), ("focal", 0.3, 6.0), ("bce", 0.25, 7.0)):
        run_params = {**params, "train": {**params["train"], "loss": loss}}
        with tracking.start_run(run_params, "train"):
            tracking.log_metrics({"val_f_w_mean": f_w, "seconds": seconds, f"only_{loss}": 1.0})
    runs = find_runs("cafa-mlflow", "train", "loss")
    assert [r.data.params["loss"] for r in runs] == ["bce", "focal"]
    table = comparison_table(runs)
    assert table.columns.tolist() == [runs[0].info.run_name, runs[1].info.run_name]
    assert table.loc["val_f_w_mean"].tolist() == ["0.2500", "0.3000"]  # the newest bce run, not the first
    assert "seconds" not in table.index and "only_bce" not in table.index
    assert table.loc["loss"].tolist() == ["bce", "focal"] and table.loc["encoder"].tolist() == ["tiny:esm2_tiny.pt"] * 2
    assert cafa(["compare"]) == 0
    printed = capsys.readouterr().out
    assert "train multitask bce tiny:esm2_tiny.pt" in printed and "val_f_w_mean" in printed
    assert "1 run(s) to compare" in format_comparison(runs[:1])


def test_chain_summary_on_the_main_run(store, tmp_path):
    params, _ = store
    submission = tmp_path / "submission.tsv"
    submission.write_text("P1\tGO:0000001\t0.5\n")
    rows = [
        {"step": "prepare", "seconds": 2.0},
        {"step": "ensemble", "seconds": 3.5, "metric": "val_f_w_mean", "value": 0.4},
    ]
    with tracking.start_run(params, "main") as run:
        run_meta.log_chain_summary(rows, submission, {"val_f_w_mean": 0.4, "test_f_w_BPO": 0.3, "test_tau_BPO": 0.2})
    logged = MlflowClient().get_run(run.info.run_id)
    assert logged.data.params["submission"] == str(submission)
    assert logged.data.metrics == {
        "seconds_prepare": 2.0,
        "seconds_ensemble": 3.5,
        "val_f_w_mean": 0.4,
        "test_f_w_BPO": 0.3,
        "submission_bytes": 18.0,
    }
    steps = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/steps.txt")
    assert "ensemble" in steps and "val_f_w_mean = 0.400" in steps and steps.startswith("step")
