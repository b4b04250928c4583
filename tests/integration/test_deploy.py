"""Dockerfile, docker-compose.yml and deploy/: what can be checked without a Docker engine.

- The Dockerfile's build stage is replayed on this machine: its COPYs from a build context
  filtered by .dockerignore, its ENV and RUN steps with the virtual environment's path moved
  into tmp_path. The result must run --version, --demo and the image's HEALTHCHECK command.
- Each compose service's bind mounts are laid out in tmp_path as the container sees them,
  and the configs are checked there (promtool, amtool, Grafana provisioning), so that a
  wrong mount path fails here as it would in the container.
- Service names, ports and paths must agree across the files.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from helpers import REPO, free_port, tool

from exporter import __version__
from exporter.cli.flags import DEFAULT_LISTEN

COMPOSE = REPO / "docker-compose.yml"
REAL_OVERRIDE = REPO / "deploy" / "docker-compose.real.yml"
EXPORTER_PORT = int(DEFAULT_LISTEN.rpartition(":")[2])


# --- Dockerfile -------------------------------------------------------------------------------


@dataclass
class Stage:
    image: str
    name: str | None
    steps: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [rest for instr, rest in self.steps if instr == instruction]

    def one(self, instruction: str) -> str:
        found = self.all(instruction)
        assert len(found) == 1, f"expected one {instruction} in stage {self.name or self.image}: {found}"
        return found[0]


def dockerfile() -> list[Stage]:
    logical, buf = [], ""
    for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        if buf.strip():
            logical.append(buf.strip())
        buf = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG" and not stages:
            key, _, default = rest.partition("=")
            args[key] = default
        elif instruction == "FROM":
            rest = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], rest)
            image, *alias = rest.split()
            stages.append(Stage(image, alias[1] if len(alias) == 2 and alias[0].upper() == "AS" else None))
        else:
            stages[-1].steps.append((instruction, rest))
    return stages


def env_pairs(rest: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in rest.split())


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(.dockerignore) patterns as (is_exception, regex); the last one matching a path or a parent wins."""
    rules = []
    for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = "".join(
            ".*" if part == "**" else "[^/]*" if part == "*" else "[^/]" if part == "?" else re.escape(part)
            for part in re.split(r"(\*\*|\*|\?)", pattern)
        )
        rules.append((negate, re.compile(regex.replace(".*/", "(.*/)?"))))
    return rules


def excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            result = not negate
    return result


def build_context(dest: Path) -> set[str]:
    """Copy what `docker build .` would send (the repo less .dockerignore) to dest."""
    rules = dockerignore_rules()
    reincluded = [r.pattern for negate, r in rules if negate]
    sent = set()
    for top, dirs, files in os.walk(REPO):
        rel_top = Path(top).relative_to(REPO).as_posix()
        rel = "" if rel_top == "." else rel_top + "/"
        # Skip a directory that is excluded and that no exception can reach into.
        dirs[:] = [
            d
            for d in dirs
            if not excluded(rel + d, rules) or any(p.startswith(re.escape(rel + d)) for p in reincluded)
        ]
        for name in files:
            if not excluded(rel + name, rules):
                sent.add(rel + name)
                (dest / rel).mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(top) / name, dest / rel / name)
    return sent


def test_dockerfile_image_basics():
    stages = dockerfile()
    final = stages[-1]
    for stage in stages:
        assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", stage.image), stage.image
    assert stages[0].image == final.image, "the copied virtual environment needs the same Python"
    minimum = re.search(r'requires-python = "(.+)"', (REPO / "pyproject.toml").read_text()).group(1)
    image_python = tuple(int(x) for x in re.search(r"(\d+)\.(\d+)", final.image).groups())
    assert image_python >= tuple(int(x) for x in re.search(r"(\d+)\.(\d+)", minimum).groups())
    user = final.one("USER").split(":")[0]
    assert user not in ("root", "0") and final.steps.index(("USER", final.one("USER"))) > max(
        i for i, (instr, _) in enumerate(final.steps) if instr in ("RUN", "COPY")
    ), "the image must end as a non-root user"
    assert final.one("EXPOSE").split("/")[0] == str(EXPORTER_PORT)
    health = json.loads(final.one("HEALTHCHECK").partition("CMD")[2])
    assert health == ["whatsgate-exporter", "healthcheck"]  # default listen address: :9877
    assert json.loads(final.one("ENTRYPOINT")) == ["whatsgate-exporter"]
    assert json.loads(final.one("CMD")) == ["--config.file=/etc/whatsgate-exporter/config.yaml"]


def test_dockerignore_sends_only_what_the_build_needs(tmp_path: Path):
    sent = build_context(tmp_path)
    assert {"pyproject.toml", "README.md", "exporter/cli/serve.py"} <= sent
    rules = dockerignore_rules()
    for private in (
        ".git/config",
        ".venv-test/bin/python",
        "deploy/exporter/whatsgate_api_key",
        "config.yaml",
        "exporter/__pycache__/cli.cpython-311.pyc",
        "tests/conftest.py",
    ):
        assert excluded(private, rules), private
    assert not any(s.startswith((".git/", "tests/")) or "__pycache__" in s for s in sent)


def test_dockerfile_install_step_works_in_a_fresh_venv(tmp_path: Path):
    """The build stage replayed: its venv must run --version, --demo and the HEALTHCHECK."""
    build, final = dockerfile()[0], dockerfile()[-1]
    context = tmp_path / "context"
    build_context(context)
    copy_from = [rest.split() for rest in final.all("COPY") if rest.startswith("--from=")]
    assert len(copy_from) == 1 and copy_from[0][0] == f"--from={build.name}", copy_from
    venv_in_image = copy_from[0][1]
    assert copy_from[0][2] == venv_in_image, "a virtual environment must keep its path"

    root = tmp_path / "fs"  # container paths live under here
    shims = tmp_path / "shims"  # the image's `python` and `pip` are this interpreter's
    shims.mkdir()
    for name, command in (("python", f'"{sys.executable}"'), ("pip", f'"{sys.executable}" -m pip')):
        (shims / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (shims / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    workdir = "/"
    for instruction, rest in build.steps:
        if instruction == "WORKDIR":
            workdir = rest
            (root / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif instruction == "ENV":
            env.update(env_pairs(rest))
        elif instruction == "COPY":
            *sources, dest = rest.split()
            target = root / workdir.lstrip("/") / dest
            for src in sources:
                origin = context / src
                assert origin.exists(), f"COPY {src}: not in the build context (see .dockerignore)"
                if origin.is_dir():
                    shutil.copytree(origin, target, dirs_exist_ok=True)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
        elif instruction == "RUN":
            command = rest.replace(venv_in_image, str(root / venv_in_image.lstrip("/")))
            result = subprocess.run(
                ["sh", "-c", command],
                cwd=root / workdir.lstrip("/"),
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert result.returncode == 0, f"RUN {rest}\n{result.stdout}\n{result.stderr}"
        else:
            assert instruction in ("ARG", "LABEL"), f"the replay does not know {instruction}"

    venv = root / venv_in_image.lstrip("/")
    assert f"PATH={venv_in_image}/bin:" in final.one("ENV")
    assert not (venv / "bin" / "pip").exists(), "the image's venv carries no pip of its own"
    exe = venv / "bin" / json.loads(final.one("ENTRYPOINT"))[0]
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.strip() == f"whatsgate-exporter {__version__}"

    port = free_port()
    health = json.loads(final.one("HEALTHCHECK").partition("CMD")[2])
    # The image's command, pointed at this test's port (as the README says to do with another address).
    health = [str(venv / "bin" / health[0]), f"--web.listen-address=127.0.0.1:{port}", *health[1:]]
    proc = subprocess.Popen(
        [exe, "--demo", "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if requests.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "demo from the venv not ready in 20 s"
            time.sleep(0.2)
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert len(re.findall(r"^whatsgate_up\{.*\} 1\.0$", body, re.M)) == 3
        assert subprocess.run(health, capture_output=True, timeout=30).returncode == 0
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
    assert subprocess.run(health, capture_output=True, timeout=30).returncode != 0, "healthy while down"


# --- compose ----------------------------------------------------------------------------------


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def services(path: Path = COMPOSE) -> dict[str, dict]:
    return load_yaml(path)["services"]


def bind_mounts(service: dict) -> list[tuple[Path, str]]:
    """(host path, container path) of each bind mount; named volumes are left out."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                out.append((REPO / volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out.append((REPO / source, target))
    return out


def mirror(service: dict, root: Path) -> Path:
    """Lay the service's bind mounts out under root as the container sees them."""
    for source, target in bind_mounts(service):
        assert source.exists(), f"{source.relative_to(REPO)} is mounted at {target} but does not exist"
        dest = root / target.lstrip("/")
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
    return root


def flag(service: dict, name: str, default: str | None = None) -> str | None:
    for arg in service.get("command", []):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return default


def published(service: dict) -> set[int]:
    """Container ports the service publishes ("127.0.0.1:9090:9090" → 9090)."""
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}


def service_by_image(prefix: str) -> tuple[str, dict]:
    found = [(n, s) for n, s in services().items() if s.get("image", "").startswith(prefix)]
    assert len(found) == 1, f"one service with image {prefix}*: {found}"
    return found[0]


def host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address if "://" in address else f"//{address}")
    return parts.hostname, parts.port


def prometheus_port() -> int:
    _, prometheus = service_by_image("prom/prometheus:")
    return int(flag(prometheus, "web.listen-address", ":9090").rpartition(":")[2])


def test_compose_stack_shape():
    found = services()
    assert {"exporter", "prometheus", "alertmanager", "grafana"} <= set(found)
    exporter = found["exporter"]
    assert exporter["build"] == "." and exporter["command"] == ["--demo"]
    for name, service in found.items():
        image = service.get("image", "")
        if "build" not in service:
            assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), f"{name}: pin {image}"
        for source, target in bind_mounts(service):
            assert source.exists(), f"{name}: {source.relative_to(REPO)} (mounted at {target}) is missing"
    named = {v.split(":")[0] for s in found.values() for v in s.get("volumes", []) if isinstance(v, str)}
    declared = set(load_yaml(COMPOSE).get("volumes") or {})
    assert {v for v in named if not v.startswith((".", "/"))} == declared


@pytest.mark.realtools
def test_prometheus_config_as_mounted(tmp_path: Path):
    _, prometheus = service_by_image("prom/prometheus:")
    config = mirror(prometheus, tmp_path) / flag(prometheus, "config.file").lstrip("/")
    result = subprocess.run(
        [tool("promtool"), "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"SUCCESS: [1-9]\d* rules found", output), f"rule file not checked:\n{output}"


@pytest.mark.realtools
def test_prometheus_config_comment_commands_work():
    """The check command in prometheus.yml's comment works as written, from the project directory."""
    lines = (REPO / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8").splitlines()
    header = [line.lstrip("#").strip() for line in itertools.takewhile(lambda s: s.startswith("#"), lines)]
    commands = [m.group(0) for line in header if (m := re.search(r"\bpromtool .*", line))]
    assert commands, "prometheus.yml's comment names no promtool command"
    env = {**os.environ, "PATH": f"{Path(tool('promtool')).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        result = subprocess.run(["sh", "-c", command], cwd=REPO, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
    named = re.findall(r"\btests/[\w/]+\.py\b", "\n".join(header))
    assert all((REPO / test).exists() for test in named), named
    # The rule file it checks is the one the compose stack mounts next to prometheus.yml.
    _, prometheus = service_by_image("prom/prometheus:")
    config_dir = Path(flag(prometheus, "config.file")).parent
    rules = {source for source, target in bind_mounts(prometheus) if Path(target).parent == config_dir}
    checked = {REPO / arg for command in commands for arg in command.split() if arg.endswith(".yml")}
    config = REPO / "deploy" / "prometheus" / "prometheus.yml"
    # `promtool check config` checks the rule files it names, relative to itself: a mounted rule
    # file that lies beside prometheus.yml in the repository too is checked with it.
    beside = (
        {config.parent / name for name in load_yaml(config).get("rule_files", [])}
        if config in checked
        else set()
    )
    assert rules - {config} <= checked | beside, (rules, checked)


@pytest.mark.realtools
def test_alertmanager_config_as_mounted(tmp_path: Path):
    _, alertmanager = service_by_image("prom/alertmanager:")
    config = mirror(alertmanager, tmp_path) / flag(alertmanager, "config.file").lstrip("/")
    result = subprocess.run(
        [tool("amtool"), "check-config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_the_stacks_rules_are_the_demos_rules():
    """The compose stack runs --demo: Prometheus must alert on what the status page shows."""
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "rules", "--demo"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert (REPO / "deploy" / "prometheus" / "alerts.yml").read_text(encoding="utf-8") == result.stdout, (
        "regenerate it: whatsgate-exporter rules --demo --output deploy/prometheus/alerts.yml"
    )


# What a team watches first: customers waiting for an answer and for a read, and the exporter's
# own health. The example config alerts on each; so must the configs deploy/ ships.
WATCHED_FIRST = {
    "chat_unanswered",
    "oldest_unanswered",
    "chats_unanswered",
    "responses_within",
    "chat_waiting",
    "oldest_waiting",
    "chats_waiting",
    "account_down",
    "stale",
}


@pytest.mark.parametrize("config", ["deploy/exporter/config.yaml", "deploy/kubernetes/config.yaml"])
def test_shipped_configs_alert_on_what_the_example_does(config: str):
    example = {t["metric"] for t in load_yaml(REPO / "config.example.yaml")["thresholds"]}
    assert example >= WATCHED_FIRST, WATCHED_FIRST - example
    shipped = {t["metric"] for t in load_yaml(REPO / config).get("thresholds") or []}
    assert shipped >= WATCHED_FIRST, f"{config} has no threshold on {sorted(WATCHED_FIRST - shipped)}"


def test_alertmanager_names_alerts_that_exist():
    config = (REPO / "deploy" / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8")
    named = set(re.findall(r"alertname\s*=\s*\\?\"?(\w+)", config))
    rules = load_yaml(REPO / "deploy" / "prometheus" / "alerts.yml")
    defined = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert named and named <= defined, named - defined


def test_grafana_provisioning_as_mounted(tmp_path: Path):
    grafana = services()["grafana"]
    root = mirror(grafana, tmp_path)
    env = grafana.get("environment", {})
    provisioning = root / env.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning").lstrip("/")
    sources = [load_yaml(f) for f in sorted((provisioning / "datasources").glob("*.y*ml"))]
    datasources = [d for s in sources for d in s["datasources"]]
    assert sources and all(s["apiVersion"] == 1 for s in sources)
    default = [d for d in datasources if d.get("isDefault")]
    assert len(default) == 1 and default[0]["type"] == "prometheus"
    by_type = {d["type"]: d for d in datasources}
    prom_name, _ = service_by_image("prom/prometheus:")
    assert host_port(by_type["prometheus"]["url"]) == (prom_name, prometheus_port())
    am_name, alertmanager = service_by_image("prom/alertmanager:")
    assert host_port(by_type["alertmanager"]["url"]) == (am_name, 9093)
    assert 9093 in published(alertmanager)
    # $__rate_interval is derived from timeInterval: it must be Prometheus's scrape interval.
    scrape = load_yaml(REPO / "deploy" / "prometheus" / "prometheus.yml")["global"]["scrape_interval"]
    assert by_type["prometheus"]["jsonData"]["timeInterval"] == scrape

    dashboards = [load_yaml(f) for f in sorted((provisioning / "dashboards").glob("*.y*ml"))]
    providers = [p for d in dashboards for p in d["providers"]]
    assert dashboards and all(d["apiVersion"] == 1 for d in dashboards) and providers
    shipped = (REPO / "grafana" / "dashboards" / "whatsgate.json").read_bytes()
    for provider in providers:
        assert provider["type"] == "file"
        folder = root / provider["options"]["path"].lstrip("/")
        assert (folder / "whatsgate.json").read_bytes() == shipped, f"{folder} lacks the dashboard"
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (root / home.lstrip("/")).read_bytes() == shipped, home


def test_ports_and_names_agree():
    found = services()
    prometheus_yml = load_yaml(REPO / "deploy" / "prometheus" / "prometheus.yml")
    # Exporter: cli default = Dockerfile EXPOSE (checked above) = compose = Prometheus's target.
    exporter_name = next(n for n, s in found.items() if s.get("build") == ".")
    assert published(found[exporter_name]) == {EXPORTER_PORT}
    jobs = {j["job_name"]: j for j in prometheus_yml["scrape_configs"]}
    targets = [t for sc in jobs["whatsgate"]["static_configs"] for t in sc["targets"]]
    assert targets == [f"{exporter_name}:{EXPORTER_PORT}"]
    # Prometheus → Alertmanager.
    am_name, alertmanager = service_by_image("prom/alertmanager:")
    am_targets = [
        t
        for am in prometheus_yml["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    assert am_targets == [f"{am_name}:9093"]
    assert flag(alertmanager, "web.listen-address", ":9093") == ":9093"
    assert prometheus_port() in published(found["prometheus"])
    # Alertmanager → the webhook sink.
    am_yml = load_yaml(REPO / "deploy" / "alertmanager" / "alertmanager.yml")
    urls = [w["url"] for r in am_yml["receivers"] for w in r.get("webhook_configs", [])]
    host, port = host_port(urls[0])
    sink = found[host]
    assert sink["command"][:2] == ["python", "/app/webhook.py"] and sink["command"][2] == str(port)
    assert [t for _, t in bind_mounts(sink)] == ["/app/webhook.py"]
    # Grafana publishes its default port.
    assert 3000 in published(found["grafana"])


def test_real_mode_override(tmp_path: Path):
    base, override = services(), services(REAL_OVERRIDE)
    assert set(override) <= set(base)
    exporter = override["exporter"]
    cmd = json.loads(dockerfile()[-1].one("CMD"))
    assert exporter["command"] == cmd, "the override should run the image's default command"
    config_in_image = cmd[0].split("=", 1)[1]
    mounts = dict((t, s) for s, t in bind_mounts(exporter))
    assert config_in_image in mounts and mounts[config_in_image].exists()
    secrets = load_yaml(REAL_OVERRIDE)["secrets"]
    assert set(exporter["secrets"]) == set(secrets)
    assert excluded(secrets["whatsgate_api_key"]["file"].removeprefix("./"), dockerignore_rules())

    text = mounts[config_in_image].read_text(encoding="utf-8")
    key_path = "/run/secrets/whatsgate_api_key"
    assert load_yaml(mounts[config_in_image])["whatsgate"]["api_key_file"] == key_path
    key = tmp_path / "key"
    key.write_text("test-key\n")
    copy = tmp_path / "config.yaml"
    copy.write_text(text.replace(key_path, str(key)))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(copy)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 0 and ": OK (" in result.stdout, result.stdout + result.stderr


def test_real_mode_instructions_give_a_config_that_finds_its_key(tmp_path: Path):
    """The override's own instructions, followed in a copy of the project: the config they leave
    behind must read the key from the secret file the override provides, and pass check-config in
    the environment the override gives the container (no WHATSGATE_API_KEY)."""
    project = tmp_path / "project"
    shutil.copytree(REPO / "deploy", project / "deploy")
    shutil.copy2(REPO / "config.example.yaml", project)
    lines = REAL_OVERRIDE.read_text(encoding="utf-8").splitlines()
    header = itertools.takewhile(lambda s: s.startswith("#"), lines)
    steps = [m.group(1) for line in header if (m := re.match(r"#\s{2,}(\S.*)", line))]  # the indented lines
    assert any("docker compose" in step for step in steps), steps
    for step in steps:
        if not step.startswith("docker "):
            result = subprocess.run(["sh", "-c", step], cwd=project, capture_output=True, text=True)
            assert result.returncode == 0, f"{step}\n{result.stderr}"

    override = load_yaml(REAL_OVERRIDE)
    exporter, provided = override["services"]["exporter"], override["secrets"]
    root = tmp_path / "container"
    for volume in exporter["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            (root / target.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(project / source, root / target.lstrip("/"))
    secret_paths = []
    for secret in exporter["secrets"]:
        name, target = (secret, secret) if isinstance(secret, str) else (secret["source"], secret["target"])
        path = f"/run/secrets/{target}" if not target.startswith("/") else target
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / provided[name]["file"], root / path.lstrip("/"))
        secret_paths.append(path)

    config_path = json.loads(dockerfile()[-1].one("CMD"))[0].split("=", 1)[1]
    config = load_yaml(root / config_path.lstrip("/"))
    assert config["whatsgate"].get("api_key_file") in secret_paths, config["whatsgate"]
    text = (root / config_path.lstrip("/")).read_text(encoding="utf-8")
    for path in secret_paths:
        text = text.replace(path, str(root / path.lstrip("/")))
    (root / config_path.lstrip("/")).write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "WHATSGATE_API_KEY"}
    env.update(dict(e.split("=", 1) for e in exporter.get("environment", []) if "=" in e))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(root / config_path.lstrip("/"))],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 0 and ": OK (" in result.stdout, result.stdout + result.stderr


def test_webhook_sink_prints_alerts():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "deploy" / "webhook" / "webhook.py"), f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening" in proc.stdout.readline()
        alert = {
            "status": "firing",
            "labels": {"alertname": "WhatsGateAccountDown", "severity": "critical", "account": "support"},
            "annotations": {"summary": "Polls of support fail"},
        }
        payload = {"version": "4", "status": "firing", "alerts": [alert, alert | {"status": "resolved"}]}
        url = f"http://127.0.0.1:{port}/alerts"
        assert requests.post(url, json=payload, timeout=5).status_code == 200
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        assert lines[0] == (
            "[FIRING] WhatsGateAccountDown severity=critical account=support: Polls of support fail"
        )
        assert lines[1].startswith("[RESOLVED] WhatsGateAccountDown")
        assert requests.post(url, data=b"nope", timeout=5).status_code == 400
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0, proc.stderr.read()
