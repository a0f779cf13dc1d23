"""The structure docs/ARCHITECTURE.md describes, checked on the code's own imports (read with
the ast module, every import: at the top, inside functions, under TYPE_CHECKING):

- no circle of imports between cbrun's modules;
- the TensorFlow floor (cbrun/engine/) is imported only by the entry points listed here,
  and only inside their functions; no other module imports TensorFlow or Keras at its top;
- every package of cbrun is described in docs/ARCHITECTURE.md, and nothing it names as a
  package is missing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "cbrun"
ENGINE = "cbrun.engine"
# The lower floor's doors to the TensorFlow floor, each inside a function that runs only
# when TensorFlow is wanted: the commands and the Python API that train, evaluate, predict
# or export, and the segment that imports TensorFlow for a run.
ENTRY_POINTS = {
    "cbrun.commands.train", "cbrun.commands.resume", "cbrun.commands.evaluate",
    "cbrun.commands.predict", "cbrun.commands.export", "cbrun.commands.validate", "cbrun.api",
    "cbrun.run.segment", "cbrun.commands.benchmark", "cbrun.commands.lrfind",
    "cbrun.commands.job", "cbrun.sweep.worker",
}
HEAVY = ("tensorflow", "keras", "tf_keras")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, name: str) -> list[tuple[str, bool]]:
    """(module imported, at the top of the file) for every import in `path`; a relative
    import and `from package import module` name the module itself."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        at_top = id(node) in top
        if isinstance(node, ast.Import):
            found += [(alias.name, at_top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.append((base, at_top))
            found += [(f"{base}.{alias.name}", at_top) for alias in node.names]
    return found


def graph() -> dict[str, set[str]]:
    """cbrun module -> the cbrun modules it imports (any import, anywhere in the file).
    `from cbrun.a import b` where b is a module is an edge to cbrun.a.b alone: the package's
    __init__ runs first, as for any submodule, but nothing is taken from it."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        found = [target for target, _ in imports(path, name)]
        targets = {t for t in found if t in known and t != name
                   and not any(other.startswith(t + ".") for other in found if other in known)}
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges[v]:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def floor(name: str) -> str:
    return "engine" if name == ENGINE or name.startswith(ENGINE + ".") else "lower"


def test_no_module_of_cbrun_is_in_a_circle_of_imports():
    assert cycles(graph()) == []


def test_only_the_entry_points_open_the_tensorflow_floor_and_only_inside_functions():
    wrong = []
    for name, path in modules().items():
        if floor(name) == "engine":
            continue
        for target, at_top in imports(path, name):
            if floor(target) != "engine" or not target.startswith("cbrun."):
                continue
            if name not in ENTRY_POINTS:
                wrong.append(f"{name} imports {target} (not a declared entry point)")
            elif at_top:
                wrong.append(f"{name} imports {target} at its top (only inside a function)")
    assert wrong == []


def test_the_lower_floor_never_imports_tensorflow_or_keras_at_its_top():
    heavy = [f"{name} imports {target}" for name, path in modules().items()
             if floor(name) == "lower" for target, at_top in imports(path, name)
             if at_top and target.split(".")[0] in HEAVY]
    assert heavy == []


def test_every_package_of_cbrun_is_described_in_the_architecture():
    packages = {module_name(p.parent).removeprefix("cbrun.").replace(".", "/") + "/"
                for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE}
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    layout = text.split("## ", 2)[1]  # the first section: the layout
    named = set(re.findall(r"^\s+([a-z_/]+/)\s", layout, re.MULTILINE)) - {"cbrun/"}
    assert packages == named, (sorted(packages - named), sorted(named - packages))


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path):
    """The analysis itself, on two made-up modules: a circle is found, and a lazy import
    is an import."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import b\n")
    b.write_text("def f():\n    from a import x\n")
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    assert imports(b, "b") == [("a", False), ("a.x", False)]
