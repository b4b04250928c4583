"""deploy/kubernetes: what can be checked without a cluster.

The manifests are built as `kubectl apply -k` builds them (kubectl's kustomize, from the `test`
extra), with and without the web-config component, then:
- every resource validates, strictly, against the Kubernetes schemas of the oldest version the
  manifests support and of a recent one (kubernetes-validate); the Prometheus Operator's resources
  against the Operator's API from npm (tests/k8s-schemas/check.mjs);
- the PrometheusRule's groups are exactly what `whatsgate-exporter rules` writes for the shipped
  config, pass promtool, and its documented regeneration command reproduces it;
- the StatefulSet's pods are run as processes: for each pod index its exact args (with
  $(POD_INDEX) expanded), its volumes laid out from the built ConfigMap and Secrets, the config
  changed only to point at the simulator. Scraped as the ServiceMonitor says, the pods together
  report every account exactly once, and their probes pass;
- from 2 pods to 3, each pod's state file keeps the waits of the accounts that stay with it, and
  the accounts that move start their waits again (what the README says resharding does).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import kubernetes_validate
import pytest
import trustme
import urllib3
import yaml
from helpers import REPO, chat_obj, free_port, spawn, stop, tool, wait_ready, wait_until
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from exporter import __version__
from exporter.cli.flags import DEFAULT_LISTEN
from exporter.config.settings import parse_config
from exporter.config.sharding import shard_of
from exporter.simulator import SimAccount, Simulator
from exporter.snapshot import statefile
from exporter.whatsgate.budget import SHARED_BYTES

pytestmark = pytest.mark.realtools

KUBERNETES = REPO / "deploy" / "kubernetes"
SCHEMAS = REPO / "tests" / "k8s-schemas"
# The oldest Kubernetes the manifests support (the pod-index label is on by default from 1.28),
# and a recent one.
KUBERNETES_VERSIONS = ("1.28.0", "1.37.0")
KEY = "SECRET-k8s-key-5e0b9d2a"
PASSWORD = "k8s scrape password"
SESSIONS = [f"7998{i:07d}" for i in range(12)]
SWITCH = "# components:\n#   - web-config\n"
EXPORTER = [sys.executable, "-m", "exporter"]  # the image's entrypoint, whatsgate-exporter


def build(tmp_path: Path, *, web_config: bool = False, count: int | None = None) -> dict[str, dict]:
    """`kubectl kustomize` of a copy of deploy/kubernetes with the files a user supplies."""
    tree = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, tree, ignore=shutil.ignore_patterns("whatsgate_api_key", "scrape-password"))
    (tree / "whatsgate_api_key").write_text(KEY + "\n")
    kustomization = tree / "kustomization.yaml"
    text = kustomization.read_text(encoding="utf-8")
    if web_config:
        assert SWITCH in text, "kustomization.yaml: the commented web-config switch is gone"
        text = text.replace(SWITCH, SWITCH.replace("# ", ""))
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
        (tree / "web-config" / "web-config.yml").write_text(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"
            f"basic_auth_users:\n  prometheus: {hashed}\n"
        )
        (tree / "web-config" / "scrape-password").write_text(PASSWORD)  # printf %s: no newline
    if count is not None:
        text, found = re.subn(r"(?m)^(\s+count:) \d+$", rf"\1 {count}", text)
        assert found == 1
    kustomization.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(tree)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(result.stdout)}


def one(resources: dict[str, dict], kind: str) -> dict:
    found = [r for key, r in resources.items() if key.startswith(f"{kind}/")]
    assert len(found) == 1, f"one {kind}: {list(resources)}"
    return found[0]


def generated(resources: dict[str, dict], kind: str, prefix: str) -> dict:
    found = [r for r in resources.values() if r["kind"] == kind and r["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, f"one {kind} {prefix}*: {list(resources)}"
    return found[0]


def container(resources: dict[str, dict]) -> dict:
    containers = one(resources, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def dockerfile(instruction: str) -> str:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    return re.findall(rf"(?m)^{instruction} (.+)$", text)[-1]


# --- schemas ----------------------------------------------------------------------------------


def check_operator_resources(resources: list[dict]) -> subprocess.CompletedProcess[str]:
    """tests/k8s-schemas/check.mjs on these resources (it needs `npm ci` there: scripts/test)."""
    if not (SCHEMAS / "node_modules").is_dir():
        message = "tests/k8s-schemas has no node_modules: npm ci --prefix tests/k8s-schemas"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}: required under CI")
        pytest.skip(message)
    return subprocess.run(
        [tool("node"), str(SCHEMAS / "check.mjs")],
        input=json.dumps(resources),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("web_config", [False, True], ids=["plain", "web-config"])
def test_resources_validate_against_the_kubernetes_and_operator_schemas(tmp_path: Path, web_config: bool):
    resources = build(tmp_path, web_config=web_config)
    custom = [r for r in resources.values() if r["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {r["kind"] for r in custom} == {"ServiceMonitor", "PrometheusRule"}
    for resource in resources.values():
        if resource not in custom:
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(resource, version, strict=True)

    result = check_operator_resources(custom)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_checks_refuse_what_a_cluster_refuses(tmp_path: Path):
    """The validators are not vacuous: an unknown field, a bad enum or a bad duration is refused."""
    resources = build(tmp_path)
    statefulset = one(resources, "StatefulSet")
    container(resources)["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSIONS[0], strict=True)
    monitor, rule = one(resources, "ServiceMonitor"), one(resources, "PrometheusRule")
    monitor["spec"]["endpoints"][0]["honorLabel"] = True
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    result = check_operator_resources([monitor, rule])
    assert result.returncode == 1
    assert "'\"honorLabel\"' does not exist" in result.stdout and "for must match pattern" in result.stdout


# --- the PrometheusRule -----------------------------------------------------------------------


def test_prometheusrule_is_what_rules_writes_for_the_shipped_config(tmp_path: Path):
    rule = yaml.safe_load((KUBERNETES / "prometheusrule.yaml").read_text(encoding="utf-8"))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "rules", "--config.file", str(KUBERNETES / "config.yaml")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load(result.stdout)
    assert set(rule["spec"]) == {"groups"} and rule["spec"]["groups"] == written["groups"]
    assert written["groups"] and all(group["rules"] for group in written["groups"])
    (tmp_path / "groups.yml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    check = subprocess.run(
        [tool("promtool"), "check", "rules", str(tmp_path / "groups.yml")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    # The regeneration command in its comment, run as written, gives the same file, byte for byte.
    rule_text = (KUBERNETES / "prometheusrule.yaml").read_text(encoding="utf-8")
    commands = re.findall(r"(?m)^#   (whatsgate-exporter rules .+)$", rule_text)
    assert len(commands) == 1, commands
    project = tmp_path / "project"
    shutil.copytree(KUBERNETES, project / "deploy" / "kubernetes")
    (project / "deploy" / "kubernetes" / "prometheusrule.yaml").write_text(
        rule_text.split("\nspec:\n")[0] + "\nspec:\n  groups: []\n"  # stale groups, to be replaced
    )
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "whatsgate-exporter").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m exporter "$@"\n')
    (shims / "whatsgate-exporter").chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    regenerated = subprocess.run(
        ["sh", "-c", commands[0]], cwd=project, env=env, capture_output=True, text=True
    )
    assert regenerated.returncode == 0, regenerated.stderr
    assert (project / "deploy" / "kubernetes" / "prometheusrule.yaml").read_text() == rule_text
    assert sorted(p.name for p in (project / "deploy" / "kubernetes").iterdir()) == sorted(
        p.name for p in KUBERNETES.iterdir()
    ), "the command leaves temporary files behind"


# --- the shape: one knob for N, each pod scraped once, locked down ------------------------------


def test_one_count_sets_replicas_and_every_pods_shard_total(tmp_path: Path):
    for count in (None, 3):
        resources = build(tmp_path / str(count), count=count)
        replicas = one(resources, "StatefulSet")["spec"]["replicas"]
        assert replicas == (count or replicas) and replicas >= 2
        shard = [a for a in container(resources)["args"] if a.startswith("--shard=")]
        assert shard == [f"--shard=$(POD_INDEX)/{replicas}"]


def test_each_pod_is_scraped_once_on_metrics_and_runs_locked_down(tmp_path: Path):
    resources = build(tmp_path)
    statefulset, service = one(resources, "StatefulSet"), one(resources, "Service")
    monitor, budget = one(resources, "ServiceMonitor"), one(resources, "PodDisruptionBudget")
    pod = statefulset["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= labels.items()
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    # One endpoint on the Service's one port, the container's port, /metrics: each pod once.
    (port,) = service["spec"]["ports"]
    (endpoint,) = monitor["spec"]["endpoints"]
    (container_port,) = container(resources)["ports"]
    assert endpoint["port"] == port["name"] and port["targetPort"] == container_port["name"]
    assert container_port["containerPort"] == int(DEFAULT_LISTEN.rpartition(":")[2])
    assert endpoint["path"] == "/metrics" and not endpoint.get("params")
    assert not any(a.startswith("--web.telemetry-path") for a in container(resources)["args"])

    spec = container(resources)
    assert spec["image"] == f"whatsgate-exporter:{__version__}"
    uid = int(dockerfile("USER").split(":")[0])
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == uid
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert spec["resources"]["requests"]["memory"] and spec["resources"]["limits"]["memory"]
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["readinessProbe"]["httpGet"]["path"] == "/ready"
    mounts = {m["mountPath"] for m in spec["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
    state = yaml.safe_load(
        generated(resources, "ConfigMap", "whatsgate-exporter-config")["data"]["config.yaml"]
    )
    assert [m for m in spec["volumeMounts"] if m["name"] in claims] == [
        {"name": "state", "mountPath": str(Path(state["state_file"]).parent)}
    ]
    assert str(Path(state["whatsgate"]["api_key_file"]).parent) in mounts


# --- the pods, run ----------------------------------------------------------------------------


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command and args: $$ is a literal $, unknown names stay."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), value
    )


def lay_out(
    resources: dict[str, dict], root: Path, extra_secrets: dict[str, dict[str, bytes]]
) -> dict[str, Path]:
    """The pod's volumes under root, as its container sees them; returns mount path -> host path."""
    pod = one(resources, "StatefulSet")["spec"]["template"]["spec"]
    secrets = {r["metadata"]["name"]: r for r in resources.values() if r["kind"] == "Secret"}
    maps = {r["metadata"]["name"]: r for r in resources.values() if r["kind"] == "ConfigMap"}

    def files(source: dict) -> dict[str, bytes]:
        if "configMap" in source:
            return {k: v.encode() for k, v in maps[source["configMap"]["name"]]["data"].items()}
        name = source["secret"].get("secretName") or source["secret"]["name"]
        if name in extra_secrets:
            return extra_secrets[name]
        return {k: base64.b64decode(v) for k, v in secrets[name]["data"].items()}

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted = {}
    for mount in pod["containers"][0]["volumeMounts"]:
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)  # a pod that comes back finds its volume
        volume = volumes.get(mount["name"])
        sources = [] if volume is None else volume.get("projected", {}).get("sources", [volume])
        for source in sources:
            for name, content in files(source).items():
                (target / name).write_bytes(content)
        mounted[mount["mountPath"]] = target
    return mounted


def in_root(text: str, mounted: dict[str, Path]) -> str:
    """Container paths in text replaced by where they are laid out (longest mount first, one pass)."""
    pattern = "|".join(re.escape(p) for p in sorted(mounted, key=len, reverse=True))
    return re.sub(pattern, lambda m: str(mounted[m[0]]), text)


def scrape(url: str, pool: urllib3.PoolManager, headers: dict[str, str]) -> dict[str, list[Sample]]:
    response = pool.request("GET", url, headers=headers, timeout=10)
    assert response.status == 200, response.status
    return {f.name: f.samples for f in text_string_to_metric_families(response.data.decode())}


def wait_ok(pool: urllib3.PoolManager, url: str, headers: dict[str, str], what: str) -> None:
    wait_until(lambda: pool.request("GET", url, headers=headers).status == 200, timeout=30, what=what)


@dataclass
class Pod:
    index: int
    proc: subprocess.Popen[str]
    port: int
    log: Path
    mounted: dict[str, Path]  # mount path in the container -> where it is laid out

    @property
    def listen(self) -> str:
        return f"--web.listen-address=127.0.0.1:{self.port}"  # in the pod: the default, :9877


def start_pods(
    procs: list[subprocess.Popen[str]],
    resources: dict[str, dict],
    tmp_path: Path,
    sim: Simulator,
    extra_secrets: dict[str, dict[str, bytes]],
) -> list[Pod]:
    """Every pod of the StatefulSet as a process: its exact args, $(POD_INDEX) expanded, its volumes
    laid out under tmp_path/pod-INDEX (kept from an earlier start, as its volume claim), the config
    pointed at the simulator and changed in nothing else."""
    spec = container(resources)
    assert "command" not in spec, "the image's entrypoint runs the exporter"
    assert spec["env"] == [
        {
            "name": "POD_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}},
        }
    ]
    total = one(resources, "StatefulSet")["spec"]["replicas"]
    pods = []
    for index in range(total):
        mounted = lay_out(resources, tmp_path / f"pod-{index}", extra_secrets)
        config_arg = next(a for a in spec["args"] if a.startswith("--config.file="))
        config_file = Path(in_root(config_arg.split("=", 1)[1], mounted))
        config = yaml.safe_load(config_file.read_text())
        text = config_file.read_text().replace(config["whatsgate"]["url"], sim.url)
        config_file.write_text(in_root(text, mounted))
        key_file = in_root(config["whatsgate"]["api_key_file"], mounted)
        assert yaml.safe_load(config_file.read_text()) == {
            **config,
            "whatsgate": {**config["whatsgate"], "url": sim.url, "api_key_file": key_file},
            "state_file": in_root(config["state_file"], mounted),
        }

        env = {"POD_INDEX": str(index)}  # the pod-index label, through the downward API
        args = [in_root(expand(a, env), mounted) for a in spec["args"]]
        assert f"--shard={index}/{total}" in args
        port, log = free_port(), tmp_path / f"pod-{index}-{free_port()}.log"
        command = [*EXPORTER, *args, f"--web.listen-address=127.0.0.1:{port}"]
        proc = spawn(procs, command, log, cwd=REPO, env={**os.environ, **env})
        pods.append(Pod(index, proc, port, log, mounted))
    return pods


def simulator() -> Simulator:
    """One chat per session, unread since an hour ago."""
    since = int(time.time()) - 3600
    chats = [[chat_obj(f"{i}@c.us", 1 + i, ts=since)] for i in range(len(SESSIONS))]
    return Simulator(
        [SimAccount(w, f"line {i}", chats=c) for i, (w, c) in enumerate(zip(SESSIONS, chats, strict=True))],
        KEY,
    )


MEBI = {"Mi": 2**20, "Gi": 2**30}


def quantity(text: str) -> int:
    """A Kubernetes memory quantity in the binary units the manifests use, in bytes."""
    return int(text[:-2]) * MEBI[text[-2:]]


def test_the_memory_limit_holds_the_worst_case_the_readme_states(tmp_path: Path):
    """README, Many accounts: answers in flight share a pool plus one answer of up to
    max_response_size, and one answer is decoded at a time, at most about 1.7 times
    max_response_size, above the exporter's own memory (the request). A limit below that
    turns one large or hostile answer into an OOMKill and a restart loop, where the exporter
    itself would have refused the answer as invalid_response and gone on (the limit was 256Mi:
    the stated worst case at the default size is 341 MiB)."""
    resources = build(tmp_path)
    limits = container(resources)["resources"]
    shipped = generated(resources, "ConfigMap", "whatsgate-exporter-config")["data"]["config.yaml"]
    whatsgate = {k: v for k, v in yaml.safe_load(shipped)["whatsgate"].items() if k != "api_key_file"}
    largest = parse_config(
        {"whatsgate": {**whatsgate, "api_key": "k"}, "discover": True}
    ).whatsgate.max_response_size
    worst = quantity(limits["requests"]["memory"]) + SHARED_BYTES + largest + int(1.7 * largest)
    assert quantity(limits["limits"]["memory"]) >= worst


def test_the_state_volume_holds_the_largest_state_file_twice(tmp_path: Path):
    """The state file is written whole beside the old one, then renamed over it (up to
    statefile.MAX_BYTES each): the claim was 64Mi, so a shard's file past half the cap could no
    longer be written, and only a log line said so."""
    (claim,) = one(build(tmp_path), "StatefulSet")["spec"]["volumeClaimTemplates"]
    assert quantity(claim["spec"]["resources"]["requests"]["storage"]) >= 2 * statefile.MAX_BYTES


@pytest.mark.parametrize("web_config", [False, True], ids=["plain", "web-config"])
def test_the_statefulsets_pods_poll_every_account_exactly_once(
    procs: list[subprocess.Popen[str]], tmp_path: Path, web_config: bool
):
    resources = build(tmp_path, web_config=web_config)
    spec, total = container(resources), one(resources, "StatefulSet")["spec"]["replicas"]
    (endpoint,) = one(resources, "ServiceMonitor")["spec"]["endpoints"]

    # What the user (or cert-manager) supplies beside the manifests: the TLS Secret.
    extra: dict[str, dict[str, bytes]] = {}
    if web_config:
        ca, tls = trustme.CA(), endpoint["tlsConfig"]
        server = ca.issue_cert(tls["serverName"])
        extra[tls["ca"]["secret"]["name"]] = {
            "tls.crt": server.cert_chain_pems[0].bytes(),
            "tls.key": server.private_key_pem.bytes(),
            tls["ca"]["secret"]["key"]: ca.cert_pem.bytes(),
        }

    sim = simulator()
    sim.start()
    try:
        pods = start_pods(procs, resources, tmp_path, sim, extra)
        headers, pool = {}, urllib3.PoolManager()
        scheme = endpoint.get("scheme", "http")
        if web_config:  # as the Operator scrapes: the ServiceMonitor's CA, server name and login
            scrape_secret = resources[f"Secret/{endpoint['basicAuth']['password']['name']}"]["data"]
            user = base64.b64decode(scrape_secret[endpoint["basicAuth"]["username"]["key"]]).decode()
            password = base64.b64decode(scrape_secret[endpoint["basicAuth"]["password"]["key"]]).decode()
            headers = urllib3.make_headers(basic_auth=f"{user}:{password}")
            ca_file = tmp_path / "ca.crt"
            ca_file.write_bytes(extra[endpoint["tlsConfig"]["ca"]["secret"]["name"]]["ca.crt"])
            pool = urllib3.PoolManager(
                ca_certs=str(ca_file), server_hostname=endpoint["tlsConfig"]["serverName"]
            )

        entrypoint = json.loads(dockerfile("ENTRYPOINT"))
        owners: dict[str, list[int]] = {}
        for pod in pods:
            base = f"{scheme}://127.0.0.1:{pod.port}"
            for probe in ("livenessProbe", "readinessProbe"):
                handler = spec[probe]
                if "httpGet" in handler:
                    wait_ready(
                        pod.proc, f"{base}{handler['httpGet']['path']}", pod.log, f"pod {pod.index} {probe}"
                    )
                else:
                    command = handler["exec"]["command"]
                    assert command[0] == entrypoint[0] and command[-1] == "healthcheck"
                    run = [
                        *EXPORTER,
                        *(in_root(a, pod.mounted) for a in command[1:-1]),
                        pod.listen,
                        "healthcheck",
                    ]
                    wait_until(
                        lambda run=run: subprocess.run(run, capture_output=True, timeout=30).returncode == 0,
                        what=f"pod {pod.index} {probe}",
                    )
            if web_config:  # why the probes are exec: without the password, every path is 401
                assert pool.request("GET", f"{base}/ready").status == 401
                wait_ok(pool, f"{base}/ready", headers, f"pod {pod.index} ready")
            metrics = scrape(f"{base}{endpoint['path']}", pool, headers)
            assert [s.labels for s in metrics["whatsgate_exporter_shard_info"]] == [
                {"index": str(pod.index), "total": str(total)}
            ]
            polled = [s.labels["whatsapp_id"] for s in metrics["whatsgate_up"]]
            assert polled, f"pod {pod.index} polls no account"
            for wid in polled:
                owners.setdefault(wid, []).append(pod.index)
        assert sorted(owners) == sorted(SESSIONS)
        assert {wid: o for wid, o in owners.items() if len(o) > 1} == {}
    finally:
        sim.stop()


def test_a_new_n_keeps_the_waits_of_accounts_that_stay_and_restarts_the_others(
    procs: list[subprocess.Popen[str]], tmp_path: Path
):
    """What the README says resharding does to the state files, from 2 pods to 3."""
    sim = simulator()
    sim.start()
    try:
        before = build(tmp_path / "2", count=2)
        pods = start_pods(procs, before, tmp_path, sim, {})
        for pod in pods:
            wait_ready(pod.proc, f"http://127.0.0.1:{pod.port}/ready", pod.log, f"pod {pod.index}")
            stop(pod.proc)  # a clean stop writes the state file
        (start,) = {chat["timestamp"] for wid in SESSIONS for chat in sim.chats(wid)}
        for wid in SESSIONS:  # a new message in every chat, still unread
            sim.set_chat(wid, sim.chats(wid)[0]["id"], timestamp=start + 3000)

        after = build(tmp_path / "3", count=3)
        waiting_since: dict[str, float] = {}
        for pod in start_pods(procs, after, tmp_path, sim, {}):
            wait_ready(pod.proc, f"http://127.0.0.1:{pod.port}/ready", pod.log, f"pod {pod.index}")
            metrics = scrape(f"http://127.0.0.1:{pod.port}/metrics", urllib3.PoolManager(), {})
            for sample in metrics["whatsgate_chat_waiting_since_timestamp_seconds"]:
                waiting_since[sample.labels["whatsapp_id"]] = sample.value
            stop(pod.proc)
            state = json.loads((pod.mounted["/var/lib/whatsgate-exporter"] / "state.json").read_text())
            assert all(shard_of(wid, 3) == pod.index for wid in state["accounts"]), pod.index
        stayed = {wid for wid in SESSIONS if shard_of(wid, 2) == shard_of(wid, 3)}
        assert stayed and len(stayed) < len(SESSIONS)
        assert waiting_since == {wid: float(start if wid in stayed else start + 3000) for wid in SESSIONS}
    finally:
        sim.stop()
