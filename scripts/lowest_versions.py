"""Print pip constraints pinning each runtime dependency to the lowest release its range allows.

scripts/test installs the exporter with these into a second virtual environment and runs the fast
tests there, so that the lower ends of the ranges in pyproject.toml are tested, not only the newest
releases. Read from the installed package's metadata (run it with the test environment's Python),
so no TOML parser is needed on Python 3.10. A lower bound that is a yanked release, or that does
not install, is a bound to raise in pyproject.toml, not to work around here.
"""

from __future__ import annotations

import sys
from importlib.metadata import requires

from packaging.requirements import Requirement


def lowest(distribution: str) -> list[str]:
    pins = []
    for line in requires(distribution) or []:
        requirement = Requirement(line)
        if requirement.marker is not None:  # an extra's, or a platform's
            continue
        floors = [spec.version for spec in requirement.specifier if spec.operator in (">=", "==")]
        if len(floors) != 1:
            raise SystemExit(f"{distribution}: {line}: expected one lower bound (>=)")
        pins.append(f"{requirement.name}=={floors[0]}")
    return pins


if __name__ == "__main__":
    print("\n".join(lowest(sys.argv[1] if len(sys.argv) > 1 else "whatsgate-exporter")))
