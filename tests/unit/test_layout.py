"""The layout's promises, checked on the source: no import cycles, leaves that stay leaves."""

from __future__ import annotations

import ast
import io
import re
import tokenize
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
    above = ("exporter.poller", "exporter.web", "exporter.page", "exporter.cli", "exporter.metrics")
    for module, deps in import_graph().items():
        if module.startswith(("exporter.snapshot", "exporter.whatsgate", "exporter.model")):
            assert not [d for d in deps if d.startswith(above)], module


def test_the_config_describes_and_the_layers_that_serve_or_poll_act_on_it():
    """config/ reads and checks the files; web/ checks passwords and counts requests by what it read,
    the pollers poll by it: nothing in config/ imports them (the web config once built web/'s
    password checker, so even the healthcheck made a bcrypt hash)."""
    users = ("exporter.web", "exporter.poller", "exporter.cli", "exporter.metrics", "exporter.page")
    for module, deps in import_graph().items():
        if module.startswith("exporter.config"):
            assert not [d for d in deps if d.startswith(users)], module


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


# A timing, size or speed-up: "0.21 ms", "3.5 MB", "40 us", "4x". Literals in ``double
# backticks`` are syntax or output examples (``64MiB``, ``500ms``), not figures.
FIGURE = re.compile(
    r"\d+(?:[.,]\d+)?\s?(?:ms|µs|us|ns|MB|MiB|KB|KiB|kB|GB|GiB)\b"
    r"|\b\d+(?:\.\d+)?(?:x|\u00d7)(?=\W|$)"
)
LITERAL = re.compile(r"``.*?``", re.DOTALL)
# Being rewritten by the lead (issue 18, item 1: the aiohttp server): scanned once it lands.


def comments_and_docstrings(source: str) -> list[tuple[int, str]]:
    """(line, text) of every comment (tokenize) and every docstring line (ast) of a module."""
    found = [
        (tok.start[0], tok.string)
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                first = node.body[0].lineno
                found.extend((first + i, line) for i, line in enumerate(doc.splitlines()))
    return found


def figures_in(source: str) -> list[tuple[int, str]]:
    return sorted(
        (line, text.strip())
        for line, text in comments_and_docstrings(source)
        if FIGURE.search(LITERAL.sub("", text))
    )


def test_comments_say_why_and_figures_live_in_bench_results():
    """Timings and sizes go stale with every change: they live in bench/RESULTS.md with the
    command that produced them, not in comments or docstrings (issue 18, item 8)."""
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {text}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, text in figures_in(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "figures in comments or docstrings (move them to bench/RESULTS.md):\n" + "\n".join(
        offenders
    )


def test_the_figure_scan_finds_comments_and_docstrings_but_not_strings():
    source = '''
"""Module: renders in 0.21 ms."""
LIMIT = "at most 64 MiB"  # was 638 ms, now 32 ms
def f():
    """Holds ``64MiB`` at most."""
    log("took 3.5 MB")
class C:
    """Fine.

    But 4x faster.
    """
'''
    assert [line for line, _ in figures_in(source)] == [2, 3, 10]


def test_no_linux_only_system_calls_so_the_exporter_runs_on_macos_too():
    """The web server was Linux-only (epoll) and the README's demo failed on a Mac (issue 18)."""
    linux_only = re.compile(r"\bepoll\b|\bEPOLL|/proc/self|\bsignalfd\b|\binotify\b")
    offenders = [
        f"{path.relative_to(REPO)}: {match.group(0)}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for match in linux_only.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_the_layout_stays_within_the_budgets_issue_18_set():
    """At most four modules at the top of the package, web/ under 1,100 lines, metrics/ under 1,500,
    no module over 400: a module that grows past them splits by concept."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 4, top
    web = sum(_lines(p) for p in (PACKAGE / "web").rglob("*.py"))
    assert web < 1100, f"exporter/web/ has {web} lines, its budget is 1,100"
    metrics = sum(_lines(p) for p in (PACKAGE / "metrics").rglob("*.py"))
    assert metrics < 1500, f"exporter/metrics/ has {metrics} lines, its budget is 1,500"
    over = {str(p.relative_to(REPO)): _lines(p) for p in PACKAGE.rglob("*.py") if _lines(p) > 400}
    assert not over, over
