"""The package's layers, read from the code: no import circles between modules of cafa_mlflow/ and no import from a
layer above (docs/layout.md). Imports under `if TYPE_CHECKING:` are type-only: they do not count as upward
imports, but they do close a circle (a reader still goes round it)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cafa_mlflow"
# lowest first; a module may import from its own layer or below
LAYERS = (
    ("errors", "console", "config"),
    ("io",),
    ("go",),
    ("data", "embed"),
    ("predictors",),
    ("evaluation",),
    ("serving",),
    ("tracking",),
    ("workflows",),
)
LAYER_OF = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.AST, type_only: bool = False):
    """Import nodes outside `if TYPE_CHECKING:` blocks (lazy imports inside functions included); with
    `type_only` those inside such blocks too."""
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and getattr(test, "id", getattr(test, "attr", "")) == "TYPE_CHECKING":
            node.body = node.body if type_only else []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def import_graph(type_only: bool = False, packages: tuple[Path, ...] = (PACKAGE,)) -> dict[str, set[str]]:
    """{module: modules of `packages` (cafa_mlflow) it imports}; `from pkg import mod` counts as importing
    pkg.mod; with `type_only` imports under `if TYPE_CHECKING:` count too. The top package itself is left
    out (every module imports it)."""
    modules = {module_name(p): p for package in packages for p in package.rglob("*.py")}
    tops = {package.name for package in packages}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text()), type_only):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                deps.add(full if full in modules else node.module)
        graph[name] = {d for d in deps if d in modules and d != name and d not in tops}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    return LAYER_OF[top]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, deps in graph.items() if a != "cafa_mlflow" for b in deps if layer(b) > layer(a))


def test_every_package_has_a_layer():
    tops = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    tops -= {"__init__", "__pycache__"}
    assert tops <= set(LAYER_OF), f"give these a layer in LAYERS: {sorted(tops - set(LAYER_OF))}"
    assert len([p for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]) <= 4  # at most four flat modules


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_no_import_circles_through_type_only_imports():
    assert cycles(import_graph(type_only=True)) == []


def test_type_only_imports_are_seen():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a.b\nimport c\n")
    names = {
        flag: sorted(n.names[0].name for n in _runtime_imports(tree, flag) if isinstance(n, ast.Import))
        for flag in (True, False)
    }
    assert names == {True: ["a.b", "c"], False: ["c"]}


def test_no_import_from_a_layer_above():
    assert upward_imports(import_graph()) == []


def test_the_check_sees_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


if __name__ == "__main__":  # `python tests/test_layers.py`: the circles and upward imports, one per line
    g = import_graph()
    for c in cycles(import_graph(type_only=True)):
        print("circle:", " <-> ".join(c))
    for edge in upward_imports(g):
        print("upward:", edge)


MLFLOW_OWNERS = ("tracking", "serving", "workflows")  # the only packages that may import mlflow
BLOCK_MLFLOW = """
import importlib, sys
class NoMlflow:
    def find_spec(self, name, path=None, target=None):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError("mlflow is made unimportable by the test")
sys.meta_path.insert(0, NoMlflow())
for name in sys.argv[1:]:
    importlib.import_module(name)
print("imported", len(sys.argv) - 1)
"""


def test_library_imports_without_mlflow():
    import subprocess
    import sys

    names = sorted(m for m in import_graph() if m.split(".")[1:2] and m.split(".")[1] not in MLFLOW_OWNERS)
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_MLFLOW, *names],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"imported {len(names)}"
    grep = [
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] not in MLFLOW_OWNERS
        and any(line.startswith(("import mlflow", "from mlflow")) for line in p.read_text().splitlines())
    ]
    assert grep == []
