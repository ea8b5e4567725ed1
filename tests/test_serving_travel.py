"""The registered model travels: it carries its code (`code/cafa_mlflow`), pins exactly the packages it imports,
declares DIAMOND in its metadata (one line naming the package to install where it is missing), and loads with
`mlflow.pyfunc.load_model` in a Python process that has the model's requirements but not this project.

"Not this project": `python -I -S` with the virtual environment's site-packages appended to sys.path by hand.
-I drops PYTHONPATH, the working directory and the user site; -S skips `site`, so no .pth file runs, and the
editable install of cafa_mlflow exists only as a .pth-installed import hook. The child first checks that
`cafa_mlflow` cannot be found, then loads the model, whose `code/` MLflow puts on sys.path. (Serving from an
environment MLflow builds itself, `--env-manager uv`, needs minutes of package downloads: benchmarks/serve_own_env.py.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from predictor_fixtures import SEQUENCES
from test_serving_sequences import log_tiny_model

from cafa_mlflow.serving import model_environment, pyfunc

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "serving.md"
has_diamond = shutil.which("diamond") is not None
QUERY = pd.DataFrame({"protein": ["Q_HBB", "Q_UBQ"], "sequence": [SEQUENCES["HBB"], SEQUENCES["UBQ"]]})


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """naive + knn (+ homology where DIAMOND is installed) on a tiny local encoder, registered as cafa-go with
    the alias champion in `tmp/mlflow.db` (artifacts under tmp/artifacts)."""
    tmp = tmp_path_factory.mktemp("travel")
    ckpt, info = log_tiny_model(tmp, "travel", has_diamond, artifacts=tmp / "artifacts")
    version = mlflow.register_model(info.model_uri, "cafa-go").version
    MlflowClient().set_registered_model_alias("cafa-go", "champion", version)
    local = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp / "downloaded"))
    expected = mlflow.pyfunc.load_model(info.model_uri).predict(QUERY)
    yield tmp, info, Path(local), expected
    mlflow.set_tracking_uri(None)


def clean_python(code: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `code` in `python -I -S` with only the environment's site-packages on sys.path (no checkout, no
    editable install); stdout's last line is the child's JSON answer."""
    site = sysconfig.get_paths()["purelib"]
    prelude = (
        f"import sys; sys.path.append({site!r}); import importlib.util; "
        "assert importlib.util.find_spec('cafa_mlflow') is None, 'cafa_mlflow is importable without the model'\n"
    )
    base = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + code],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_model_carries_its_code_and_pins_what_it_imports(registered):
    _, _, local, _ = registered
    flavor = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["code"] == "code" and (local / "code/cafa_mlflow/serving/pyfunc.py").is_file()
    assert not list((local / "code").rglob("__pycache__"))
    names = [re.split("==", line)[0] for line in (local / "requirements.txt").read_text().split()]
    assert names == list(model_environment.BASE_REQUIREMENTS) + list(
        model_environment.EMBED_REQUIREMENTS
    )  # no scikit-learn
    assert all("==" in line for line in (local / "requirements.txt").read_text().split())


@pytest.mark.skipif(not has_diamond, reason="DIAMOND not installed")
def test_metadata_declares_diamond_and_a_machine_without_it_is_told_in_one_line(registered, tmp_path, monkeypatch):
    _, info, local, _ = registered
    needs = pyfunc.model_metadata(info.model_uri)["system_requirements"]
    assert needs == [{**model_environment.DIAMOND, "needed_by": ["homology"]}]
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no diamond on PATH
    with pytest.raises(MlflowException) as caught:
        mlflow.pyfunc.load_model(str(local))
    message = caught.value.message
    assert "\n" not in message and "diamond-aligner" in message and "bioconda::diamond" in message, message
    assert "not on PATH" in message and "homology" in message


def test_a_diamond_outside_the_version_range_is_named(tmp_path, monkeypatch):
    fake = tmp_path / "diamond"
    fake.write_text("#!/bin/sh\necho 'diamond version 0.9.24'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    problem = model_environment.system_problem(model_environment.system_requirements({"reference", "naive"}))
    assert problem is not None and "is version 0.9.24" in problem and "diamond-aligner" in problem
    assert model_environment.system_requirements({"naive", "knn"}) == []


@pytest.mark.slow
def test_load_model_without_the_project(registered):
    """The downloaded model loads and predicts where cafa_mlflow is neither installed nor on sys.path."""
    tmp, _, local, expected = registered
    code = (
        "import json, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model({str(local)!r})\n"
        f"out = model.predict(pd.DataFrame({QUERY.to_dict('list')!r}))\n"
        "import cafa_mlflow\n"
        "print(json.dumps({'code': cafa_mlflow.__file__, 'rows': out.to_dict('records')}))\n"
    )
    done = clean_python(code, tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["code"].startswith(str(local / "code")), answer["code"]
    pd.testing.assert_frame_equal(pd.DataFrame(answer["rows"]), expected, check_dtype=False)


def docs_example() -> str:
    """The Python block under 'Another project' in docs/serving.md."""
    text = DOCS.read_text()
    section = text.split("## Another project", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_docs_example_loads_the_champion_in_a_plain_python_session(registered):
    """docs/serving.md's example, run as written in the folder holding the store (mlflow.db), without the
    project: a DataFrame of protein, term, score for two sequences."""
    tmp, _, _, _ = registered
    code = docs_example() + "\nimport json\nprint(json.dumps(scores.to_dict('records')))\n"
    done = clean_python(code, tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = pd.DataFrame(json.loads(done.stdout.strip().splitlines()[-1]))
    assert list(rows.columns) == ["protein", "term", "score"] and len(rows)
    assert rows["protein"].nunique() == 2 and rows["score"].between(0, 1).all()


@pytest.mark.skipif(not has_diamond, reason="DIAMOND not installed")
def test_cafa_predict_without_diamond_says_what_to_install(registered, tmp_path, monkeypatch, capsys):
    from pipelines import cli

    tmp, _, _, _ = registered
    fasta = tmp_path / "q.fasta"
    fasta.write_text(f">Q\n{SEQUENCES['UBQ']}\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    argv = [
        "predict",
        "--fasta",
        str(fasta),
        "--out",
        str(tmp_path / "s.tsv"),
        "--model-uri",
        "models:/cafa-go@champion",
    ]
    code = cli.main(argv + ["--tracking-uri", f"sqlite:///{tmp}/mlflow.db", "--tracking-system-metrics", "false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "diamond-aligner" in err[0] and "Traceback" not in err[0], err
    assert not (tmp_path / "s.tsv").exists()
