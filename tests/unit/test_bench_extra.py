"""The README's bench commands work in a venv made with ``pip install '.[bench]'``.

Every third-party module a bench script imports must come from a distribution the
project declares: a dependency, or the ``bench`` extra. Read statically (ast and
pyproject.toml), so a missing declaration fails here, not on a user's first run.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions

import pytest
from helpers import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the check needs to run on one version only


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def imported_modules(path: str) -> set[str]:
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    "script", sorted(p.relative_to(REPO).as_posix() for p in (REPO / "bench").glob("*.py"))
)
def test_bench_imports_are_declared_in_the_bench_extra(script: str) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = requirement_names(project["dependencies"])
    declared |= requirement_names(project.get("optional-dependencies", {}).get("bench", []))
    providers = packages_distributions()
    # The project's own: the package, modules of tests/ (a script puts it on sys.path), and of
    # bench/ (a script's own directory is on sys.path).
    local = {"exporter", "__future__"} | {p.stem for p in (REPO / "tests").glob("*.py")}
    local |= {p.stem for p in (REPO / "bench").glob("*.py")}
    third_party = imported_modules(script) - set(sys.stdlib_module_names) - local
    for module in sorted(third_party):
        names = {d.lower().replace("_", "-") for d in providers.get(module, [module])}
        assert names & declared, f"{script} imports {module}: add it to the bench extra in pyproject.toml"
