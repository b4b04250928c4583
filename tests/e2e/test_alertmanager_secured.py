"""End to end: the agent delivers to a real Alertmanager that requires TLS and basic auth.

Alertmanager (the Debian binary) is started with its own ``--web.config.file``
(exporter-toolkit format: ``tls_server_config`` and ``basic_auth_users`` with a
bcrypt hash), on a free loopback port with a temporary data directory. The
certificates are made here by trustme. The exporter runs as a subprocess
against the WhatsGate simulator, as in test_alerting.py.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
import trustme
import yaml
from helpers import KEY, Exporter, config_for, free_port, start_exporter, stop, tool, wait_until

from exporter.simulator import Simulator

pytestmark = pytest.mark.realtools

USER = "whatsgate-agent"
PASSWORD = "SECRET-am-pass-3e8f1a"
WRONG = "SECRET-wrong-pass-77c0"
WAIT = 60.0

# wa-1 has 3 + 0 + 5 + 2 unread messages in the simulator's data: this fires at once.
THRESHOLD = "thresholds:\n  - name: WhatsGateAccountUnreadHigh\n    metric: unread_messages\n    above: 5\n"


class SecuredAlertmanager:
    def __init__(self, tmp_path: Path) -> None:
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = tmp_path / "am-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        cert, key = tmp_path / "am-cert.pem", tmp_path / "am-key.pem"
        server.cert_chain_pems[0].write_to_path(str(cert))
        server.private_key_pem.write_to_path(str(key))
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
        web = {
            "tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
            "basic_auth_users": {USER: hashed},
        }
        (tmp_path / "am-web.yml").write_text(yaml.safe_dump(web))
        routes = {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}
        (tmp_path / "am.yml").write_text(yaml.safe_dump(routes))
        (tmp_path / "am-data").mkdir()
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = tmp_path / "alertmanager.log"
        args = [
            tool("alertmanager"),
            f"--config.file={tmp_path / 'am.yml'}",
            f"--web.config.file={tmp_path / 'am-web.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # no gossip listener on 0.0.0.0:9094
        ]
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)

    def get(self, path: str, password: str = PASSWORD) -> requests.Response:
        return requests.get(f"{self.url}{path}", auth=(USER, password), verify=str(self.ca_file), timeout=5)

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"alertmanager exited: {self.log.read_text()[-3000:]}"
            try:
                return self.get("/-/ready").status_code == 200
            except requests.exceptions.SSLError:
                return False  # listening, TLS not set up yet

        wait_until(ready, timeout=30, what="secured alertmanager ready")

    def alertnames(self) -> set[str]:
        response = self.get("/api/v2/alerts")
        assert response.status_code == 200, response.text
        return {a["labels"]["alertname"] for a in response.json()}


@pytest.fixture
def am(tmp_path: Path) -> Iterator[SecuredAlertmanager]:
    server = SecuredAlertmanager(tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        stop(server.proc)  # type: ignore[arg-type]


def agent(exporters: list[Exporter], directory: Path, config: str) -> Exporter:
    directory.mkdir()
    exporter = start_exporter(directory, config)
    exporters.append(exporter)
    return exporter


def errors(exporter: Exporter) -> float:
    return exporter.scrape()["whatsgate_alertmanager_notifications_errors_total"][frozenset()]


def test_the_server_really_is_secured(am: SecuredAlertmanager) -> None:
    """Without this, the tests below could pass against an open Alertmanager."""
    assert am.get("/api/v2/alerts", password=WRONG).status_code == 401
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{am.url}/api/v2/alerts", auth=(USER, PASSWORD), verify=True, timeout=5)
    # Plain HTTP to the TLS port: Go answers 400 "Client sent an HTTP request to an HTTPS server".
    plain = requests.get(f"http://127.0.0.1:{am.port}/api/v2/alerts", auth=(USER, PASSWORD), timeout=5)
    assert plain.status_code == 400


def test_agent_delivers_with_tls_and_basic_auth(
    am: SecuredAlertmanager, sim: Simulator, exporters: list[Exporter], tmp_path: Path
) -> None:
    directory = tmp_path / "good"
    directory.mkdir()
    (directory / "am-password").write_text(PASSWORD + "\n")
    (directory / "ca.pem").write_bytes(am.ca_file.read_bytes())
    section = (
        f"alertmanager:\n  url: {am.url}\n  resend_interval: 1s\n"
        f"  basic_auth:\n    username: {USER}\n    password_file: am-password\n"
        "  tls_config:\n    ca_file: ca.pem\n"  # both relative to the config file
    )
    exporter = start_exporter(directory, config_for(sim, THRESHOLD + section))
    exporters.append(exporter)
    wait_until(lambda: "WhatsGateAccountUnreadHigh" in am.alertnames(), timeout=WAIT, what="alert delivered")
    metrics = exporter.scrape()
    assert metrics["whatsgate_alertmanager_notifications_sent_total"][frozenset()] >= 1
    assert metrics["whatsgate_alertmanager_notifications_errors_total"][frozenset()] == 0
    log = exporter.logs()
    assert "alertmanager notification failed" not in log and PASSWORD not in log


def test_wrong_password_and_untrusted_ca_are_counted_and_logged_once(
    am: SecuredAlertmanager, sim: Simulator, exporters: list[Exporter], tmp_path: Path
) -> None:
    base = f"  url: {am.url}\n  resend_interval: 1s\n"
    # Wrong password, given in the URL: it must not reach the log with the URL.
    wrong = agent(
        exporters,
        tmp_path / "wrong",
        config_for(
            sim,
            THRESHOLD + f"alertmanager:\n  url: https://{USER}:{WRONG}@127.0.0.1:{am.port}\n"
            f"  resend_interval: 1s\n  tls_config:\n    ca_file: {am.ca_file}\n",
        ),
    )
    # Right password, but the CA is not trusted (no ca_file): every POST fails in the handshake.
    untrusted = agent(
        exporters,
        tmp_path / "untrusted",
        config_for(
            sim,
            THRESHOLD
            + f"alertmanager:\n{base}  basic_auth:\n    username: {USER}\n    password: {PASSWORD}\n",
        ),
    )
    for exporter in (wrong, untrusted):
        wait_until(lambda e=exporter: errors(e) >= 3, timeout=WAIT, what="several failed sends")  # type: ignore[misc]
    time.sleep(1.5)  # and a few more retries, each failing the same way
    assert am.alertnames() == set()
    for exporter, expected in ((wrong, "HTTP 401"), (untrusted, "TLS: ")):
        metrics = exporter.scrape()
        assert metrics["whatsgate_alertmanager_notifications_sent_total"][frozenset()] == 0
        assert all(v == 1 for v in metrics["whatsgate_up"].values())  # polling goes on
        log = exporter.logs()
        failures = [line for line in log.splitlines() if "alertmanager notification failed" in line]
        assert len(failures) == 1, failures  # one line for the episode, not one per retry
        line = failures[0]
        assert "level=warn" in line and expected in line, line
        assert re.search(rf"url=https://127\.0\.0\.1:{am.port}/api/v2/alerts( |$)", line), line
        for secret in (PASSWORD, WRONG, KEY):
            assert secret not in log
