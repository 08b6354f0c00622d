"""The package's import graph: no cycles, and upper layers import lower ones, never the reverse.

Every ``import`` and ``from ... import`` in otel_showmax counts, also those inside functions
(a lazy import is still a dependency). The layers, top to bottom::

    public modules (otel_showmax, .cli, .distro, .gunicorn, .uwsgi, .testing, .receiver)
    _cli                    the otel-showmax tools
    _setup                  the composition root
    _instrumentation        Falcon spans, request log, instruments, uWSGI hooks (and .falcon)
    _pipeline               resource, providers, one init per signal, the log bridge (and .correlation)
    _export                 worker, processors, exporters, encoding (the export threads)
    _receiver               the embedded receiver (a tower of its own, used by _cli and .receiver)
    core                    _settings, _config, _errors, _diag, _threads, _upstream, _version (and .gevent)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "otel_showmax"

# Lower number = lower layer. A module may import its own layer or any lower one.
CORE = 0
LAYERS = {
    "_receiver": 1,
    "_export": 2,
    "_pipeline": 3,
    "_instrumentation": 4,
    "_setup": 5,
    "_selfcheck": 5,
    "_cli": 6,
}
CORE_MODULES = {"_settings", "_config", "_errors", "_diag", "_threads", "_upstream", "_version"}
# Public modules that are libraries of a lower layer: the composition root and the tools use them.
PUBLIC_LIBRARIES = {"gevent": CORE, "correlation": 3, "falcon": 4}
PUBLIC_LAYER = 7


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Package modules that ``path`` imports (a ``from pkg import mod`` counts as ``pkg.mod``)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    found.add(f"{target}.{alias.name}")
                elif target in known:
                    found.add(target)
    found.discard(name)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    # A package's __init__ is imported with each of its modules: it must not import them back.
    return {name: imports_of(path, name, known) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def layer(name: str) -> int:
    parts = name.split(".")
    if len(parts) == 1:
        return PUBLIC_LAYER  # otel_showmax/__init__.py
    head = parts[1]
    if head in LAYERS:
        return LAYERS[head]
    if head in CORE_MODULES:
        return CORE
    return PUBLIC_LIBRARIES.get(head, PUBLIC_LAYER)


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_upper_layers_import_lower_ones_never_the_reverse() -> None:
    wrong = sorted(
        f"{name} ({layer(name)}) imports {target} ({layer(target)})"
        for name, targets in import_graph().items()
        for target in targets
        if layer(target) > layer(name) and not _is_own_package(name, target)
    )
    assert wrong == []


def _is_own_package(name: str, target: str) -> bool:
    return name.startswith(target + ".")  # a module importing its own package's __init__


def test_no_module_or_class_is_named_for_its_speed() -> None:
    named = []
    for path in PACKAGE.rglob("*.py"):
        if any(word in path.stem.lower() for word in ("fast", "lean")):
            named.append(str(path))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(w in node.name.lower() for w in ("fast", "lean")):
                named.append(f"{path.name}: class {node.name}")
    assert named == []


def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "otel_showmax"
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def test_a_cycle_added_on_purpose_is_caught(tmp_path: Path) -> None:
    """The checker itself: a two-module cycle through a lazy import, and a three-module one."""
    root = _write(tmp_path, {
        "__init__.py": "from . import _setup\n",
        "_setup.py": "from ._pipeline import traces\n",
        "_pipeline/__init__.py": "",
        "_pipeline/traces.py": "from .._export.worker import W\n",
        "_export/__init__.py": "",
        "_export/worker.py": "def f():\n    from .._pipeline import traces\n",
        "_cli/__init__.py": "",
        "_cli/a.py": "from . import b\n",
        "_cli/b.py": "from .c import x\n",
        "_cli/c.py": "import otel_showmax._cli.a\n",
    })
    assert sorted(cycles(import_graph(root))) == [
        ["otel_showmax._cli.a", "otel_showmax._cli.b", "otel_showmax._cli.c"],
        ["otel_showmax._export.worker", "otel_showmax._pipeline.traces"],
    ]


@pytest.mark.parametrize("source", ["from .. import _setup\n", "def f():\n    from .._pipeline import logs\n"])
def test_an_upward_import_is_caught(tmp_path: Path, source: str) -> None:
    root = _write(tmp_path, {
        "__init__.py": "",
        "_setup.py": "",
        "_pipeline/__init__.py": "",
        "_pipeline/logs.py": "",
        "_export/__init__.py": "",
        "_export/worker.py": source,
    })
    graph = import_graph(root)
    assert cycles(graph) == []
    assert any(layer(t) > layer(n) for n, ts in graph.items() for t in ts)


def test_every_module_is_in_the_architecture_doc() -> None:
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            listed = f"`{path.parent.name}/`" in doc or (path.parent == PACKAGE and "`otel_showmax/__init__.py`" in doc)
        else:
            listed = f"`{path.name}`" in doc or f"`{path.stem}`" in doc
        if not listed:
            missing.append(str(path.relative_to(PACKAGE.parent)))
    assert missing == []
