"""The README documents exactly the metrics the exporter defines, and flags that exist."""

from __future__ import annotations

import re

from helpers import REPO

from exporter.cli.flags import build_parser
from exporter.metrics import definitions

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_defined_metric_is_in_a_readme_table_and_nothing_else():
    documented = set(re.findall(r"^\| `(whatsgate_[a-z_]+)` \|", README, re.M))
    defined = {
        name
        for m in vars(definitions).values()
        if isinstance(m, definitions.MetricDef)
        for name in ({m.sample_name} if m.type != "histogram" else {m.name})
    }
    assert documented == defined, (sorted(defined - documented), sorted(documented - defined))


def test_every_flag_in_the_readme_exists():
    known = {option for action in build_parser()._actions for option in action.option_strings}
    for flag in set(re.findall(r"`(--[a-z][a-z.-]+)", README)):
        if flag.startswith(("--web.", "--log.", "--config.", "--shard", "--demo", "--version")):
            assert flag in known, flag
