"""The package's layers, read from the source with `ast`: lower layers never import higher
ones, nothing but `__main__` imports the CLI, and the import graph has no cycle (lazy imports
inside functions count: they are real dependencies)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first; a module may import its own layer and the ones below (docs/layout.md). A name
# ending in "." is a package: it and everything in it. A folder is a layer: every package is
# named whole, never module by module (`test_every_package_is_one_layer`).
LAYERS = [
    ["reskd.config", "reskd.metrics", "reskd.checkpoint"],
    ["reskd.data.", "reskd.models.", "reskd.distill."],
    ["reskd.engine."],
    ["reskd.efficiency.", "reskd.predict", "reskd.export", "reskd.analysis.", "reskd.api"],
    ["reskd.runs"],
    ["reskd", "reskd.experiments."],
    ["reskd.cli"],
    ["reskd.__main__"],
]


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "reskd").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its source."""
    mods = modules()
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in mods and t != name}
        graph[name] = deps
    return graph


def layer_of(module: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if any(module == m or (m.endswith(".") and (module + ".").startswith(m)) for m in layer):
            return rank
    raise AssertionError(f"{module} is in no layer of LAYERS: add it there and to the README")


def test_every_module_has_a_layer_and_imports_only_its_own_or_lower_ones():
    graph = import_graph()
    upward = [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
              for m, deps in sorted(graph.items()) for d in sorted(deps)
              if layer_of(d) > layer_of(m)]
    assert upward == []


def test_every_package_is_one_layer():
    """Each sub-package of reskd is named whole in LAYERS (a folder is a layer), and each
    top-level module is named by itself."""
    packages = {name for name, path in modules().items() if path.name == "__init__.py"}
    named = [m for layer in LAYERS for m in layer]
    split = [m for m in named
             if not m.endswith(".") and m.rpartition(".")[0] in packages - {"reskd"}]
    assert split == [], f"modules named inside a package (name the package instead): {split}"
    whole = {m.rstrip(".") for m in named if m.endswith(".")}
    assert whole == packages - {"reskd"}


def test_only_main_imports_the_cli():
    graph = import_graph()
    assert sorted(m for m, deps in graph.items() if "reskd.cli" in deps) == ["reskd.__main__"]


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    state: dict[str, str] = {}  # "open" while on the path, "done" after

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                return path + [module, dep]
            if dep not in state:
                cycle = visit(dep, path + [module])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [])
            assert cycle is None, " -> ".join(cycle[cycle.index(cycle[-1]):])


def test_the_graph_reader_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """The checks above are not vacuous: a function-level import and a cycle are found."""
    pkg = tmp_path / "reskd"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from reskd.b import g\n")
    (pkg / "b.py").write_text("from . import a\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    graph = import_graph()
    assert graph["reskd.a"] == {"reskd.b"} and graph["reskd.b"] == {"reskd.a"}


# House rule 13: a function past about 80 lines is usually several jobs. The exceptions, each
# with its reason (declarative tables; work in progress named as such), by qualified name.
MAX_FUNCTION_LINES = 80
LONG_FUNCTIONS: dict[str, str] = {}  # none at present


def function_lengths() -> dict[str, int]:
    """module.qualified.name -> lines of every function and method (nested ones too), from its
    `def` line to its last line, docstring and comments included."""
    lengths = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lengths[name] = child.end_lineno - child.lineno + 1
                visit(child, name)
            else:
                visit(child, prefix)

    for module, path in modules().items():
        visit(ast.parse(path.read_text(), str(path)), module)
    return lengths


def test_no_function_is_longer_than_80_lines():
    lengths = function_lengths()
    long = sorted(f"{name} ({n} lines)" for name, n in lengths.items()
                  if n > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS)
    assert long == [], "split them into named steps, or add one to LONG_FUNCTIONS with a reason"
    stale = sorted(name for name in LONG_FUNCTIONS if lengths.get(name, 0) <= MAX_FUNCTION_LINES)
    assert stale == [], "short now (or gone): remove them from LONG_FUNCTIONS"
    assert all(reason.strip() for reason in LONG_FUNCTIONS.values())


def test_the_length_reader_sees_methods_and_nested_functions(tmp_path, monkeypatch):
    """The check above is not vacuous: a long method and a long nested function are found."""
    pkg = tmp_path / "reskd"
    pkg.mkdir()
    body = "".join(f"        x{i} = {i}\n" for i in range(80))
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(f"class C:\n    def m(self):\n{body}\n\ndef f():\n    def g():\n"
                              f"{body}    return g\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    assert function_lengths() == {"reskd.a.C.m": 81, "reskd.a.f": 83, "reskd.a.f.g": 81}


def test_ruff_finds_nothing():
    """The code reads one way: ruff (configured in pyproject.toml) is clean on every Python
    file of the repository."""
    import subprocess
    import sys

    root = SRC.parent
    ruff = Path(sys.executable).with_name("ruff")
    run = subprocess.run([str(ruff), "check", "src", "tests", "bench", "examples", "docs"],
                         cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:]
