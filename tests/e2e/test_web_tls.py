"""End to end: a real Prometheus scrapes the exporter over TLS with basic auth (and client certificates).

The exporter runs as ``python -m exporter --demo --web.config.file FILE`` with
certificates made by ``trustme``; Prometheus (the Debian binary) scrapes it
with one job per case, and its own ``up`` says which scrapes worked: the right
CA, server name and password give 1; a wrong password, plain HTTP, or an
untrusted client certificate under RequireAndVerifyClientCert give 0.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import requests
import trustme
import yaml
from helpers import REPO, free_port, prometheus, wait_until

pytestmark = pytest.mark.realtools

PASSWORD = "correct horse battery staple"


def start_exporter(procs: list, tmp_path: Path, web_config: str, ca_file: Path, cert: str | None) -> int:
    (tmp_path / "web.yml").write_text(web_config, encoding="utf-8")
    port = free_port()
    log = tmp_path / f"exporter-{port}.log"
    args = [
        "--demo",
        "--web.listen-address",
        f"127.0.0.1:{port}",
        "--web.config.file",
        str(tmp_path / "web.yml"),
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", *args], stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )
    procs.append(proc)

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            response = requests.get(
                f"https://localhost:{port}/healthz",
                verify=str(ca_file),
                auth=("prometheus", PASSWORD),
                cert=cert,
                timeout=2,
            )
        except requests.exceptions.SSLError:
            return False
        return response.status_code == 200

    wait_until(ready, timeout=30, what="exporter over TLS")
    return port


def job(
    name: str, port: int, ca_file: Path, password: str = PASSWORD, scheme: str = "https", **tls: str
) -> dict:
    return {
        "job_name": name,
        "scheme": scheme,
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "tls_config": {"ca_file": str(ca_file), "server_name": "localhost", **tls},
        "basic_auth": {"username": "prometheus", "password": password},
        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
    }


def test_prometheus_scrapes_over_tls_with_basic_auth(procs, tmp_path: Path):
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    client = ca.issue_cert("prometheus")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    mallory = trustme.CA().issue_cert("prometheus")
    mallory.cert_chain_pems[0].write_to_path(str(tmp_path / "mallory.crt"))
    mallory.private_key_pem.write_to_path(str(tmp_path / "mallory.key"))
    ca_file = tmp_path / "ca.crt"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode().replace("$2b$", "$2y$", 1)
    tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
    users = f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    plain_dir, mtls_dir = tmp_path / "a", tmp_path / "b"
    for d in (plain_dir, mtls_dir):
        d.mkdir()
        for name in ("server.crt", "server.key", "ca.crt"):
            (d / name).write_bytes((tmp_path / name).read_bytes())
    port = start_exporter(procs, plain_dir, tls + users, ca_file, None)
    mtls = tls + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n" + users
    client_pair = (str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
    mport = start_exporter(procs, mtls_dir, mtls, ca_file, client_pair)  # type: ignore[arg-type]

    expected = {
        "ok": 1.0,
        "wrong_password": 0.0,
        "plain_http": 0.0,
        "client_cert": 1.0,
        "untrusted_cert": 0.0,
    }
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            job("ok", port, ca_file),
            job("wrong_password", port, ca_file, password="nope"),
            job("plain_http", port, ca_file, scheme="http"),
            job("client_cert", mport, ca_file, cert_file=client_pair[0], key_file=client_pair[1]),
            job(
                "untrusted_cert",
                mport,
                ca_file,
                cert_file=str(tmp_path / "mallory.crt"),
                key_file=str(tmp_path / "mallory.key"),
            ),
        ],
    }
    query = prometheus(procs, tmp_path, yaml.safe_dump(config))
    log = tmp_path / "prometheus.log"
    seen: dict[str, float] = {}

    def all_scraped() -> bool:
        seen.clear()
        seen.update({r["metric"]["job"]: float(r["value"][1]) for r in query("up")})
        return seen == expected

    try:
        wait_until(all_scraped, timeout=60, what="every job scraped as expected")
    except AssertionError:
        raise AssertionError(f"up by job: {seen}; prometheus log: {log.read_text()[-2000:]}") from None
    exporter_log = (plain_dir / f"exporter-{port}.log").read_text()
    assert "Traceback" not in exporter_log and PASSWORD not in exporter_log
