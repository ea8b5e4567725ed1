"""The pages people read (README.md and every docs/*.md) stay true to the code:
- every `cafa ...` and `mlflow run ...` example (fenced blocks and inline code) parses: the command exists and
  each flag or `-P key=value` names a params.yaml key that command takes, so no example goes stale when a key moves;
- every repository path they name (`cafa_mlflow/...`, `tests/...`, `docs/...`, links) exists, and every
  benchmarks/RESULTS.md section they cite by title is there;
- comments and docstrings of the code cite only `docs/...` pages that exist, and say why instead of citing an
  issue number (an issue is not in the repository; the reason is what the next reader needs)."""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import re
import shlex
import tokenize
from pathlib import Path

import pytest

from cafa_mlflow.config.flags import build_parser, flag_table
from cafa_mlflow.config.params_file import read_params
from pipelines.cli import ENTRY_POINTS, UTILITIES

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
# examples the docs show on purpose as refused (the message they get is the point)
REFUSED = {"cafa train --esm-model X"}
# MLproject entry point -> the params.yaml block that takes short flags (members: their own block)
MLPROJECT_OWN = {"main": None, "naive": "naive", "homology": "homology", "knn": "knn"}
# where the code lives: paths under these, named in a page or a comment, must exist
REPO_DIRS = ("cafa_mlflow", "pipelines", "tests", "benchmarks", "scripts", "docs", "data/sample")
REPO_PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(REPO_DIRS)})/[\w./-]*\w)(?![\w<{{*])")
DOCS_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*\w")
# the word issue(s) followed by a number, or a hash sign followed by digits: a tracker entry cited instead of a reason
ISSUE_CITATION = re.compile(r"\bissues?\s*#?\s*\d+|(?<![\w&#])#\d+\b", re.I)
# a RESULTS.md section cited by title: `RESULTS.md, "Title"` or `"Title" in benchmarks/RESULTS.md`
RESULTS_AFTER = re.compile(r"RESULTS\.md[`,\s#(]*\"([^\"\n]+)\"")
RESULTS_BEFORE = re.compile(r"\"([^\"\n]+)\"\s+in\s+`?benchmarks/RESULTS\.md")
CODE_DIRS = ("cafa_mlflow", "pipelines", "tests", "benchmarks", "scripts")
COMMENTED_FILES = ("Makefile", "dvc.yaml", "params.yaml", "MLproject")


def examples(text: str) -> list[str]:
    """Commands in fenced blocks (with `\\` continuations, comments dropped) and in inline code spans."""
    found = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip().removesuffix("&").strip()  # `&`: a background worker
            if line.startswith(("cafa ", "mlflow run ")):
                found.append(line)
    for span in re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)):
        if span.startswith(("cafa ", "mlflow run ")) and "<" not in span and span not in REFUSED:
            found.append(span)
    return sorted(set(found))


EXAMPLES = sorted({example for page in PAGES for example in examples(page.read_text())})


def test_docs_folder_has_its_pages():
    """One page per topic, each linked from the README (a page nobody links to is not read)."""
    names = {page.name for page in PAGES[1:]}
    wanted = {"cafa.md", "reference.md", "dvc.md", "tuning.md", "serving.md", "scaling.md", "troubleshooting.md"}
    assert wanted | {"layout.md", "embeddings.md"} <= names
    readme = README.read_text()
    assert [name for name in sorted(names) if f"(docs/{name})" not in readme] == []


def test_readme_fits_on_a_few_screens():
    assert len(README.read_text().splitlines()) <= 250


def test_pages_have_examples_of_both_kinds():
    readme = examples(README.read_text())
    assert sum(e.startswith("cafa ") for e in readme) >= 8
    assert sum(e.startswith("mlflow run ") for e in readme) >= 3
    assert sum(e.startswith("cafa ") for e in EXAMPLES) >= 15
    assert sum(e.startswith("mlflow run ") for e in EXAMPLES) >= 8


def _check_entry(command: str, own: str | None, flags: list[str], raw: dict) -> None:
    parser, _ = build_parser(f"cafa {command}", "", raw, own)
    args, unknown = parser.parse_known_args(flags)
    assert not [a for a in unknown if a.startswith("-")], f"unknown flags {unknown} for `cafa {command}`"


@pytest.mark.parametrize("example", EXAMPLES)
def test_readme_example_parses(example):
    raw = read_params(REPO / "params.yaml")
    words = shlex.split(example)
    if words[0] == "cafa":
        command, rest = words[1], words[2:]
        if rest in ([], ["--help"], ["-h"]):  # naming the command
            assert command in ENTRY_POINTS or command in UTILITIES
            return
        if command == "member":
            assert rest[0] == "--predictor", example
            _check_entry(command, rest[1], rest[2:], raw)
        elif command in ENTRY_POINTS:
            _check_entry(command, None if command == "main" else command, rest, raw)
        else:
            assert command in UTILITIES, f"`{example}`: no command {command!r}"
            module, add, _, _ = UTILITIES[command]
            parser = argparse.ArgumentParser(prog=f"cafa {command}", exit_on_error=False)
            getattr(importlib.import_module(module), add)(parser)
            parser.parse_args(rest)  # raises on an unknown flag or a missing required one
        return
    launcher = argparse.ArgumentParser(exit_on_error=False)
    launcher.add_argument("uri")
    launcher.add_argument("-e", "--entry-point", default="main")
    launcher.add_argument("-P", "--param-list", action="append", default=[])
    launcher.add_argument("--env-manager")
    launcher.add_argument("--experiment-name")
    args = launcher.parse_args(words[2:])
    assert args.uri == ".", example
    entry = args.entry_point
    project = (REPO / "MLproject").read_text()
    assert re.search(rf"^  {re.escape(entry)}:$", project, flags=re.M), f"`{example}`: no entry point {entry}"
    own = MLPROJECT_OWN.get(entry, entry)
    table = flag_table(raw, own)
    for pair in args.param_list:
        key = pair.split("=", 1)[0]
        assert f"--{key}" in table, f"`{example}`: -P {key}= is not a parameter of -e {entry}"


def test_a_stale_key_is_caught():
    """The checker itself: `-e main` takes no short `esm_model` (the README once said so)."""
    with pytest.raises(AssertionError, match="not a parameter of -e main"):
        test_readme_example_parses("mlflow run . -e main -P esm_model=x")
    with pytest.raises(AssertionError, match="unknown flags"):
        test_readme_example_parses("cafa train --esm-model x")


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"\s", "-", text)


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {_slug(h) for h in re.findall(r"^#+\s+(.*)$", text, flags=re.M)}


def broken_links(page: Path) -> list[str]:
    """Relative markdown links of a page whose file or #anchor is missing."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (anchor and anchor not in _anchors(file)):
            broken.append(target)
    return broken


def missing_paths(text: str) -> list[str]:
    """Repository paths (`cafa_mlflow/...`, `tests/x.py::test`, `docs/...`) named in `text` that do not exist."""
    found = {match.split("::")[0].rstrip(".") for match in REPO_PATH.findall(text)}
    return sorted(path for path in found if not (REPO / path).exists())


def results_titles_missing(text: str) -> list[str]:
    """Section titles cited as `RESULTS.md, "Title"` that no `## ` heading of benchmarks/RESULTS.md starts with."""
    headings = [line[3:] for line in RESULTS.read_text().splitlines() if line.startswith("## ")]
    cited = set(RESULTS_AFTER.findall(text)) | set(RESULTS_BEFORE.findall(text))
    return sorted(title for title in cited if not any(h.startswith(title) for h in headings))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_links_and_paths_exist(page):
    text = page.read_text()
    assert broken_links(page) == [], f"{page.name}: links to nothing"
    assert missing_paths(text) == [], f"{page.name}: names paths that are not in the repository"
    assert results_titles_missing(text) == [], f"{page.name}: cites benchmarks/RESULTS.md sections that are gone"


def test_the_path_checkers_catch_what_they_should():
    assert missing_paths("see `docs/nowhere.md` and `cafa_mlflow/io/fasta.py`") == ["docs/nowhere.md"]
    assert missing_paths("`tests/test_encoder.py::test_x`, `cafa_mlflow/predictors/<name>.py`") == []
    assert results_titles_missing('benchmarks/RESULTS.md, "No such section"') == ["No such section"]
    assert results_titles_missing('"Serving latency" in `benchmarks/RESULTS.md`') == []


def comments_and_docstrings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every comment and docstring of a Python file; of every `#` comment of other files."""
    text = path.read_text()
    if path.suffix != ".py":
        return [(n, line[line.index("#") :]) for n, line in enumerate(text.splitlines(), 1) if "#" in line]
    found = [
        (tok.start[0], tok.string)
        for tok in tokenize.generate_tokens(io.StringIO(text).readline)
        if tok.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                found.append((node.body[0].lineno, doc))
    return found


def _code_files() -> list[Path]:
    files = [
        path for folder in CODE_DIRS for path in sorted((REPO / folder).rglob("*")) if path.suffix in (".py", ".sh")
    ]
    return files + [REPO / name for name in COMMENTED_FILES]


def _comment_matches(pattern: re.Pattern) -> list[tuple[str, str]]:
    """(file:line, matched text) of every match of `pattern` in the code's comments and docstrings."""
    return [
        (f"{path.relative_to(REPO)}:{line}", match.group(0))
        for path in _code_files()
        for line, text in comments_and_docstrings(path)
        for match in pattern.finditer(text)
    ]


def test_cited_docs_pages_exist():
    """A docstring or comment that sends the reader to `docs/...` sends them to a page that is there."""
    missing = [f"{where}: {cited}" for where, cited in _comment_matches(DOCS_PATH) if not (REPO / cited).exists()]
    assert missing == []


def test_no_comment_cites_an_issue_number():
    found = [f"{where}: {text}" for where, text in _comment_matches(ISSUE_CITATION)]
    assert found == [], "say why instead of citing an issue"


def test_the_comment_checkers_catch_what_they_should(tmp_path):
    source = tmp_path / "x.py"
    source.write_text('"""Fixed in issue 22."""\n\nX = "issue 7"  # see #31 and docs/nowhere.md\n')
    texts = [text for _, text in comments_and_docstrings(source)]
    assert [m.group(0) for text in texts for m in ISSUE_CITATION.finditer(text)] == ["#31", "issue 22"]
    assert [p for text in texts for p in DOCS_PATH.findall(text)] == ["docs/nowhere.md"]


def test_no_merge_conflict_markers_in_docs():
    """A merge left half-resolved shows in the docs people read first (README, RESULTS, the docs folder)."""
    markers = ("<<<<<<< ", ">>>>>>> ")
    found = [
        f"{path.relative_to(REPO)}:{n}"
        for path in [*REPO.glob("*.md"), *REPO.glob("benchmarks/*.md"), *REPO.glob("docs/*.md")]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.startswith(markers)
    ]
    assert not found, f"merge conflict markers left in: {found}"


def test_every_results_section_says_when_where_and_how():
    """Each table of benchmarks/RESULTS.md carries its date, its machine and the command that regenerates it."""
    sections = re.split(r"(?m)^(?=## )", RESULTS.read_text())[1:]
    assert sections[0].startswith("## Findings")
    lacking = [
        section.splitlines()[0]
        for section in sections[1:]
        if not (
            re.search(r"\b20\d\d-\d\d-\d\d\b", section)
            and re.search(r"(?i)\bcores?\b|\bgpu\b|machine", section)
            and re.search(r"`[^`]*\b(python|make|mlflow|cafa|dvc)\b[^`]*`|^    \S", section, flags=re.M)
        )
    ]
    assert lacking == []


def test_a_benchmark_replaces_only_its_own_section(tmp_path):
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from results_md import write_section

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## A\n\nold a\n\n## A: notes\n\nkept\n\n## B\n\nold b\n")
    write_section("## A\n\nnew a\n", results)
    write_section("## C\n\nnew c\n", results)
    assert results.read_text() == (
        "# Benchmark results\n\n## A\n\nnew a\n\n## A: notes\n\nkept\n\n## B\n\nold b\n\n## C\n\nnew c\n"
    )
    write_section("## C\n\nnewer c\n", results)  # the last section
    write_section("## B\n\nnew b\n", results)
    assert results.read_text().endswith("## A: notes\n\nkept\n\n## B\n\nnew b\n\n## C\n\nnewer c\n")
