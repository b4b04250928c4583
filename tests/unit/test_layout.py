"""The layout's promises, checked on the source: no import cycles, leaves that stay leaves."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "exporter"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from .x import y`` resolves to x.y if a module)."""
    files = {_module_name(f): f for f in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                for alias in node.names:
                    found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in files else module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for dep in sorted(graph[module]):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join([*path[path.index(dep) :], dep])
            if dep not in state:
                visit(dep)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_model_and_the_simulator_depend_on_nothing_of_the_product():
    graph = import_graph()
    assert graph["exporter.model"] == set()
    for module, deps in graph.items():
        if module.startswith("exporter.simulator"):
            assert all(d.startswith("exporter.simulator") for d in deps), (module, deps)


def test_the_data_layers_never_import_the_layers_above():
    above = ("exporter.poller", "exporter.web", "exporter.cli", "exporter.metrics.store")
    for module, deps in import_graph().items():
        if module.startswith(("exporter.snapshot", "exporter.whatsgate", "exporter.model")):
            assert not [d for d in deps if d.startswith(above)], module


def test_what_the_test_script_leaves_behind_is_ignored_by_git():
    """./scripts/test leaves its virtual environment and coverage data in the checkout."""
    import subprocess

    for path in (".venv-test/bin/python", ".coverage", ".coverage.host.1234.567890"):
        found = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False)
        assert found.returncode == 0, f"{path} is not ignored by git"


def test_only_config_parses_the_config():
    """The section parsers live in config/: snapshot/ and alerting/ keep the runtime types and take
    nothing from config.schema but format_duration (rule files and alert text print durations)."""
    for path in [*(PACKAGE / "snapshot").rglob("*.py"), *(PACKAGE / "alerting").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("config.schema"):
                assert {a.name for a in node.names} <= {"format_duration"}, path
