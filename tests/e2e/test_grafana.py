"""The Grafana dashboard: a self-consistent JSON model, and queries a real Prometheus answers.

The static tests read grafana/dashboards/whatsgate.json as Grafana would get it from
provisioning. The live test runs the demo exporter and Debian's Prometheus on loopback,
resolves the dashboard's template variables through Prometheus the way Grafana does, and
runs every panel's query: each must be accepted and return data. The firing-alerts panel
gets data from an exporter threshold and a Prometheus rule that always fire.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from helpers import REPO, exporter_command, free_port, spawn, start_prometheus, wait_ready, wait_until

from exporter.metrics import definitions

DASHBOARD = REPO / "grafana" / "dashboards" / "whatsgate.json"
DS_REF = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's own variables that may appear in queries, with what the live test puts in their place.
BUILTINS = {"__rate_interval": "4s", "__interval": "1s", "__range": "1m", "__range_s": "60"}
VAR_REF = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
DEMO_ACCOUNTS = {"support", "sales", "community"}
EXPORTER_ALERT = "DashboardTestChatUnread"
RULE_ALERT = "DashboardTestScrapeUp"


def load() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(dashboard: dict) -> list[dict]:
    """Every panel, also those nested in collapsed rows."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def variables(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def referenced(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in VAR_REF.finditer(text)}


def datasource_refs(node: object) -> Iterator[object]:
    """Every value of a "datasource" key, anywhere in the model."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


def exported_metric_names() -> set[str]:
    """The metric names the exporter defines, as its samples carry them (counters as *_total)."""
    defined = [m for m in vars(definitions).values() if isinstance(m, definitions.MetricDef)]
    histograms = {
        f"{m.name}{end}" for m in defined if m.type == "histogram" for end in ("_bucket", "_sum", "_count")
    }
    return {m.sample_name for m in defined if m.type != "histogram"} | histograms


# --- the JSON model ---------------------------------------------------------------------------


def test_dashboard_is_provisionable_json():
    raw = DASHBOARD.read_text(encoding="utf-8")
    dashboard = json.loads(raw)
    # __inputs/${DS_...} only work through the interactive import, never with provisioning.
    assert "__inputs" not in dashboard and "${DS_" not in raw
    assert 39 <= dashboard["schemaVersion"] <= 42
    assert dashboard.get("id") is None and re.fullmatch(r"[\w-]{1,40}", dashboard["uid"])
    assert dashboard["title"] and dashboard["refresh"]
    grafana_builtin = {"type": "grafana", "uid": "-- Grafana --"}  # the built-in annotations
    refs = list(datasource_refs(dashboard))
    assert refs and all(ref in (DS_REF, grafana_builtin) for ref in refs), f"hard-coded datasource: {refs}"


def test_template_variables():
    found = variables(load())
    ds = found["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus" and not ds.get("multi")
    account = found["account"]
    assert account["type"] == "query" and account["multi"] is True and account["includeAll"] is True
    assert account["datasource"] == DS_REF
    query = account["query"]["query"] if isinstance(account["query"], dict) else account["query"]
    assert re.fullmatch(r"label_values\(\s*whatsgate_\w+(\{.*\})?\s*,\s*account\s*\)", query), query
    for var in found.values():
        if var["type"] == "query":
            assert var["datasource"] == DS_REF, var["name"]
            # "All" must stand for the variable's values: an allValue of .+ would make
            # up{job=~"$job"} show every target of the Prometheus, not only exporters.
            assert var.get("allValue") is None, var["name"]
    # A variable may only use variables defined before it (Grafana resolves them in order).
    names = list(found)
    for i, var in enumerate(found.values()):
        used = referenced(json.dumps(var.get("query", "")))
        assert used <= set(names[:i]), f"{var['name']} uses {used - set(names[:i])}"


def test_panel_ids_are_unique_and_the_grid_fits_24_columns():
    all_panels = panels(load())
    ids = [p["id"] for p in all_panels]
    assert all(isinstance(i, int) and i > 0 for i in ids) and len(ids) == len(set(ids)), ids
    boxes = []
    for p in all_panels:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "xywh"), p["title"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] >= 1 and g["h"] >= 1, p["title"]
        assert g["x"] + g["w"] <= 24, f"{p['title']} ends at column {g['x'] + g['w']}"
        boxes.append((p["title"], g))
    for i, (a, ga) in enumerate(boxes):
        for b, gb in boxes[i + 1 :]:
            apart = (
                ga["x"] + ga["w"] <= gb["x"]
                or gb["x"] + gb["w"] <= ga["x"]
                or ga["y"] + ga["h"] <= gb["y"]
                or gb["y"] + gb["h"] <= ga["y"]
            )
            assert apart, f"panels {a!r} and {b!r} overlap"


def test_every_panel_and_target_uses_the_datasource_variable():
    for p in panels(load()):
        if p["type"] == "row":
            continue
        assert p.get("datasource") == DS_REF, p["title"]
        assert p["title"] and p.get("description"), p["id"]
        targets = p.get("targets") or []
        assert targets, f"{p['title']} has no query"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), p["title"]
        for t in targets:
            assert t.get("datasource") == DS_REF, (p["title"], t["refId"])
            assert t.get("expr", "").strip(), (p["title"], t["refId"])


def test_queries_use_defined_variables_and_exported_metrics():
    dashboard = load()
    defined = set(variables(dashboard)) | set(BUILTINS)
    known = exported_metric_names()
    for p in panels(dashboard):
        for t in p.get("targets", []):
            expr = t["expr"]
            assert referenced(expr) <= defined, (p["title"], referenced(expr) - defined)
            metrics = set(re.findall(r"\bwhatsgate_[a-z_]+", expr))
            assert metrics <= known, (p["title"], metrics - known)
            per_account = {
                m for m in metrics if m not in ("whatsgate_exporter_build_info", "whatsgate_discovery_up")
            }
            if per_account:
                assert "$account" in expr, f"{p['title']}: not filtered by the account variable"


def test_the_customers_waiting_longest_are_listed_as_on_the_status_page():
    """Reply times are what the exporter is for: the chats waiting longest for an answer have a
    table, as those unread longest do, each by name and with the time its wait began."""
    tables = [p for p in panels(load()) if p["type"] == "table"]
    for waited, since in (
        ("whatsgate_chat_unanswered_seconds", "whatsgate_chat_unanswered_since_timestamp_seconds"),
        ("whatsgate_chat_waiting_seconds", "whatsgate_chat_waiting_since_timestamp_seconds"),
    ):
        found = [
            p for p in tables if any(re.search(rf"\btopk\(\d+, {waited}\b", t["expr"]) for t in p["targets"])
        ]
        assert len(found) == 1, f"no table of the chats longest in {waited}"
        exprs = " ".join(t["expr"] for t in found[0]["targets"])
        assert since in exprs and "group_left (name) whatsgate_chat_info" in exprs, found[0]["title"]


def test_firing_alerts_keep_one_row_per_chat():
    """Two chats firing the same alert are two rows, also when they share a name or have none
    (privacy.names: drop): the aggregation keeps chat_id, and the table shows it."""
    (table,) = [p for p in panels(load()) if p["title"] == "Firing alerts"]
    (target,) = table["targets"]
    by = re.match(r"max by \(([^)]*)\)", target["expr"])
    assert by and "chat_id" in {label.strip() for label in by.group(1).split(",")}, target["expr"]
    (organize,) = [t for t in table["transformations"] if t["id"] == "organize"]
    assert "chat_id" not in organize["options"]["excludeByName"]
    assert "chat_id" in organize["options"]["renameByName"]


# A selector: a metric name and its optional {matchers}; the matchers' strings may hold braces.
SELECTOR = re.compile(r'\b(whatsgate_\w+|ALERTS|up)\b(?!\s*\()\s*(\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\})?')
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
JOB, ACCOUNT = ("job", "=~", "$job"), ("account", "=~", "$account")


def selectors(expr: str) -> list[tuple[str, set[tuple[str, str, str]]]]:
    """Every vector selector of the exporter's metrics (and up, ALERTS) in a query, with its matchers."""
    found = []
    for m in SELECTOR.finditer(expr):
        matchers = set(MATCHER.findall(m.group(2) or ""))
        found.append((m.group(1), matchers))
    return found


def test_selectors_are_parsed():
    expr = 'sum(rate(whatsgate_x_total{a="{b}", job=~"$job"}[5m])) * on (job) group_left (name) up'
    assert selectors(expr) == [("whatsgate_x_total", {("a", "=", "{b}"), JOB}), ("up", set())]


def without_account() -> set[str]:
    """Metrics that have no account label, so an account matcher would drop every series.

    whatsgate_alert_firing is not among them: its labels are the alert's, and every
    threshold kind's alerts carry the account.
    """
    return {
        m.sample_name
        for m in vars(definitions).values()
        if isinstance(m, definitions.MetricDef) and "account" not in m.label_names
    } - {definitions.ALERT_FIRING.sample_name}


def test_every_selector_filters_on_job_and_account():
    """Two exporters, or two jobs scraping them, must never mix in one panel: not even in a join."""
    no_account = without_account()
    missing = []
    for p in panels(load()):
        for t in p.get("targets", []):
            for metric, matchers in selectors(t["expr"]):
                need = {JOB}
                # account="" selects what has no account (alerts of plain Prometheus rules): keep it.
                if metric not in no_account | {"up"} and not any(k == "account" for k, _, _ in matchers):
                    need.add(ACCOUNT)
                if not need <= matchers:
                    missing.append(f"{p['title']} [{t['refId']}] {metric}: lacks {sorted(need - matchers)}")
    assert not missing, "\n".join(missing)


def test_table_transformations_name_existing_queries():
    for p in panels(load()):
        refs = {t["refId"] for t in p.get("targets", [])}
        for tr in p.get("transformations", []):
            for key in tr.get("options", {}).get("renameByName", {}):
                m = re.fullmatch(r"Value #(\w+)", key)
                assert m is None or m.group(1) in refs, (p["title"], key)
        if any(tr["id"] == "merge" for tr in p.get("transformations", [])):
            assert all(t.get("format") == "table" and t.get("instant") for t in p["targets"]), p["title"]


# --- against a real Prometheus ----------------------------------------------------------------


@dataclass
class Stack:
    prometheus: str
    exporter: str
    exporter_log: Path

    def query(self, expr: str, at: float) -> dict:
        r = requests.post(f"{self.prometheus}/api/v1/query", data={"query": expr, "time": at}, timeout=10)
        return r.json() | {"http_status": r.status_code}

    def label_values(self, selector: str, label: str) -> set[str]:
        r = requests.get(f"{self.prometheus}/api/v1/series", params={"match[]": selector}, timeout=10)
        r.raise_for_status()
        return {s[label] for s in r.json()["data"] if label in s}


@pytest.fixture
def stack(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> Stack:
    exporter_port = free_port()
    # The demo's accounts, plus a threshold that always fires so whatsgate_alert_firing has data.
    config = tmp_path / "exporter.yaml"
    config.write_text(
        "poll_interval: 1s\nthresholds:\n"
        f"  - {{name: {EXPORTER_ALERT}, metric: chat_unread_messages, above: 0, severity: info}}\n"
    )
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "groups:\n  - name: dashboard-test\n    rules:\n"
        f'      - alert: {RULE_ALERT}\n        expr: up{{job="whatsgate"}} == 1\n'
        "        labels: {severity: info}\n"
    )
    exporter_log = tmp_path / "exporter.log"
    exporter = spawn(procs, exporter_command(config, exporter_port, "--demo"), exporter_log, cwd=REPO)
    prometheus = start_prometheus(
        procs,
        tmp_path,
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{rules}]\n"
        "scrape_configs:\n  - job_name: whatsgate\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n",
    )
    s = Stack(prometheus, f"http://127.0.0.1:{exporter_port}", exporter_log)
    wait_ready(exporter, f"{s.exporter}/ready", exporter_log, "exporter")
    return s


def regex_escape(value: str) -> str:
    """Grafana's escaping of one value of a multi-value variable in a Prometheus regex."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


def resolve_variables(dashboard: dict, s: Stack) -> dict[str, str]:
    """Each query variable set to All (its default), as Grafana puts it in a query, in order."""
    values: dict[str, str] = {}
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", substitute(query, values))
        assert m, f"variable {var['name']}: unsupported query {query}"
        found = s.label_values(m.group(1), m.group(2))
        assert found, f"variable {var['name']} has no values"
        values[var["name"]] = "(" + "|".join(regex_escape(v) for v in sorted(found)) + ")"
        if var["name"] == "account":
            assert found == DEMO_ACCOUNTS
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    known = values | BUILTINS
    return VAR_REF.sub(lambda m: known.get(next(g for g in m.groups() if g), m.group(0)), expr)


def run_panels(dashboard: dict, s: Stack, values: dict[str, str]) -> dict[tuple[str, str], dict]:
    """Every target's result, all evaluated at one instant (so merged tables line up)."""
    at = time.time()
    results = {}
    for p in panels(dashboard):
        for t in p.get("targets", []):
            expr = substitute(t["expr"], values)
            assert "$" not in expr and "[[" not in expr, f"{p['title']}: unresolved variable in {expr}"
            results[p["title"], t["refId"]] = s.query(expr, at) | {"expr": expr}
    return results


def problems(results: dict[tuple[str, str], dict]) -> list[str]:
    out = []
    for (title, ref), r in results.items():
        if r.get("status") != "success":
            out.append(f"{title} [{ref}] rejected: {r.get('error')}\n  {r['expr']}")
        elif not r["data"]["result"]:
            out.append(f"{title} [{ref}] returned no data\n  {r['expr']}")
    return out


def labelsets(r: dict) -> set[frozenset]:
    return {frozenset((k, v) for k, v in x["metric"].items() if k != "__name__") for x in r["data"]["result"]}


def read_a_waiting_chat(s: Stack) -> None:
    """Reads one waiting chat through the demo simulator's control API, once Prometheus has scraped
    the time-to-read histogram a few times: the demo's own agents read within seconds to minutes,
    too late for this test, and a read Prometheus did not see happen would not be an increase."""
    wait_until(lambda: "simulated WhatsGate API at" in s.exporter_log.read_text(), 15, "the demo's log line")
    found = re.search(r"simulated WhatsGate API at (http://127\.0\.0\.1:\d+)", s.exporter_log.read_text())
    assert found, s.exporter_log.read_text()

    def scraped_twice() -> bool:
        expr = 'count_over_time(whatsgate_wait_duration_seconds_count{job="whatsgate"}[1m])'
        result = s.query(expr, time.time())["data"]["result"]
        return bool(result) and min(float(x["value"][1]) for x in result) >= 3

    wait_until(scraped_twice, 15, "a few scrapes of the histogram")
    waiting: list[dict[str, str]] = []

    def someone_waits() -> bool:
        result = s.query('whatsgate_chat_waiting_seconds{job="whatsgate"}', time.time())["data"]["result"]
        waiting[:] = [x["metric"] for x in result]
        return bool(waiting)

    wait_until(someone_waits, 60, "a waiting chat in the demo")
    chat = {"whatsapp_id": waiting[0]["whatsapp_id"], "chat_id": waiting[0]["chat_id"]}
    r = requests.post(f"{found.group(1)}/_sim/chat", json={**chat, "fields": {"unreadCount": 0}}, timeout=5)
    assert r.status_code == 200, r.text


def finite(r: dict) -> list[float]:
    return [v for x in r["data"]["result"] if (v := float(x["value"][1])) == v]  # NaN != NaN


@pytest.mark.realtools
def test_every_panel_query_returns_data_from_prometheus(stack: Stack):
    dashboard = load()
    read_a_waiting_chat(stack)
    # Until the data is there (a few scrapes for rate(), an evaluated rule): ~5 s, bounded.
    state: dict = {}

    def settled() -> bool:
        state["results"] = {}
        try:
            state["results"] = run_panels(dashboard, stack, resolve_variables(dashboard, stack))
        except AssertionError as exc:
            state["error"] = str(exc)
            return False
        # histogram_quantile answers NaN while no read is in the range: data, but not a time to read.
        ttr = [r for (title, _), r in state["results"].items() if title == "Time to read (p50, p90)"]
        return not problems(state["results"]) and len(ttr) == 2 and all(finite(r) for r in ttr)

    try:
        wait_until(settled, 30, "every panel query to return data")
    except AssertionError:
        pytest.fail("\n".join(problems(state["results"])) or state.get("error", "?"))
    results = state["results"]

    for p in panels(dashboard):
        targets = [results[p["title"], t["refId"]] for t in p.get("targets", [])]
        # Tables merged from several queries need the same label sets in each.
        if any(tr["id"] == "merge" for tr in p.get("transformations", [])):
            assert all(labelsets(r) == labelsets(targets[0]) for r in targets), p["title"]
        # Columns a table renames are labels its queries return.
        columns = {k for r in targets for x in r["data"]["result"] for k in x["metric"]}
        columns |= {"Time", "Value"} | {f"Value #{t['refId']}" for t in p.get("targets", [])}
        for tr in p.get("transformations", []):
            renamed = set(tr.get("options", {}).get("renameByName", {}))
            assert renamed <= columns, (p["title"], renamed - columns)

    firing = [r["metric"] for r in results["Firing alerts", "A"]["data"]["result"]]
    names = {m.get("alertname") for m in firing}
    assert {EXPORTER_ALERT, RULE_ALERT} <= names, firing
    from_exporter = [m for m in firing if m["alertname"] == EXPORTER_ALERT]
    # Chat alerts from the exporter are named via whatsgate_chat_info, once each.
    assert all(m.get("name") for m in from_exporter), from_exporter
    assert {m.get("account") for m in from_exporter} <= DEMO_ACCOUNTS
    # The waiting row: a read was observed; the demo's office hours show; waits are named.
    for ref in ("A", "B"):
        assert all(0 < v <= 86400 for v in finite(results["Time to read (p50, p90)", ref])), ref
    hours = results["Business hours", "A"]["data"]["result"]
    assert {x["metric"]["account"] for x in hours} == {"support"}  # the demo's only account with a schedule
    longest = results["Chats unread longest", "A"]["data"]["result"]
    assert 1 <= len(longest) <= 10 and all(x["metric"].get("name") for x in longest)
    oldest = {
        x["metric"]["account"]: float(x["value"][1]) for x in results["Unread longest", "A"]["data"]["result"]
    }
    assert oldest and max(oldest.values()) == max(float(x["value"][1]) for x in longest)
    most_unread = results["Chats with most unread messages", "A"]["data"]["result"]
    assert all(x["metric"].get("name") and float(x["value"][1]) > 0 for x in most_unread)
