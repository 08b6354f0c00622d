"""Only otel_showmax/_upstream.py imports private OpenTelemetry names.

A name is private when it starts with ``_`` (dunders such as ``__version__`` excepted) or comes from
a module whose dotted path has a part that does (``opentelemetry.sdk._logs``, ``..._internal``).
Every ``import`` counts, also those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "otel_showmax"
ALLOWED = PACKAGE / "_upstream.py"


def _private(name: str) -> bool:
    return any(part.startswith("_") and not (part.startswith("__") and part.endswith("__")) for part in name.split("."))


def private_imports(source: str) -> list[tuple[int, str]]:
    """(line, what) for each import of a private OpenTelemetry name in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("opentelemetry"):
            module = node.module or ""
            names = [alias.name for alias in node.names if _private(alias.name)]
            if _private(module):
                found.append((node.lineno, f"from {module} import ..."))
            found.extend((node.lineno, f"from {module} import {name}") for name in names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, f"import {alias.name}") for alias in node.names
                         if alias.name.startswith("opentelemetry") and _private(alias.name))
    return found


def test_only_upstream_module_imports_private_opentelemetry_names():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == ALLOWED:
            continue
        offenders += [f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
                      for line, what in private_imports(path.read_text())]
    assert offenders == []


def test_the_check_finds_each_kind_of_private_import():
    source = "\n".join([
        "from opentelemetry.sdk._logs import LoggerProvider",          # private module part
        "from opentelemetry.attributes import _clean_attribute_value",  # private name
        "from opentelemetry import _logs",                              # private module as a name
        "import opentelemetry.sdk.metrics._internal.instrument",        # import of a private path
        "def f():\n    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY",  # inside a function
        "from opentelemetry.sdk.version import __version__",           # dunder: public
        "from opentelemetry.sdk.trace import TracerProvider",           # public
        "from ._upstream import SDKSpan",                               # ours
    ])
    assert [line for line, _ in private_imports(source)] == [1, 2, 3, 4, 6]


def test_upstream_module_is_where_they_are():
    assert len(private_imports(ALLOWED.read_text())) >= 10
