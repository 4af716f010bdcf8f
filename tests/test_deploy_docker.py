"""deploy/docker, checked without docker: the compose file's structure (services,
healthchecks, depends_on conditions, profiles, one data source per profile), that every file
it references exists, that its ports and URLs match the settings' defaults and the adapter
configs, that every ${VAR} and TFT_* name is documented in .env.example, that every flag
given to one of our scripts is in that script's --help; and the Dockerfile's pins.

unknown_flags() is shared with test_deploy_systemd and test_deploy_scripts.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboard.settings import DashboardSettings
from inference.settings import DaemonSettings
from simfeed.settings import Settings as GeneratorSettings

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "deploy" / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OURS = sorted(name for name, s in SERVICES.items() if "build" in s)
DAEMON_PORT = DaemonSettings.model_fields["port"].default
DASHBOARD_PORT = DashboardSettings.model_fields["port"].default
CONTROL_PORT = GeneratorSettings.model_fields["control_port"].default
DATABASES = {"mongodb": 27017, "elasticsearch": 9200}
PROFILES = ("dev", "mongodb", "elasticsearch")


@functools.cache
def help_text(script: str) -> str:
    """`python SCRIPT --help` in this checkout."""
    path = ROOT / script
    assert path.is_file(), f"{script} does not exist (yet)"
    done = subprocess.run(
        [sys.executable, str(path), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{script} --help failed:\n{done.stderr[-2000:]}"
    return done.stdout


def unknown_flags(script: str, args: list[str]) -> list[str]:
    """The --flags among args that `SCRIPT --help` does not list."""
    text = help_text(script)
    flags = [arg.split("=", 1)[0] for arg in args if arg.startswith("--")]
    return [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text)]


def script_of(command: list[str]) -> tuple[str, list[str]]:
    """(the .py script, its arguments) of a `python SCRIPT ARGS...` command."""
    assert command[0] == "python" and command[1].endswith(".py"), command
    return command[1], command[2:]


def active(profile: str | None) -> set[str]:
    """The services `docker compose [--profile P] up` starts."""
    return {n for n, s in SERVICES.items() if not s.get("profiles") or profile in s["profiles"]}


def feeds_the_daemon(service: dict[str, Any]) -> bool:
    """An adapter, or a generator POSTing to the daemon (not one writing to a database)."""
    script, args = script_of(service["command"])
    if script.startswith("adapters/"):
        return True
    return script == "metrics_generator_daemon.py" and "--daemon-url" in args


# --- structure ---------------------------------------------------------------------


def test_services_and_profiles() -> None:
    assert active(None) == {"daemon", "dashboard"}
    assert active("dev") == {"daemon", "dashboard", "generator"}
    db = {"mongodb", "mongodb-generator", "mongodb-adapter"}
    assert active("mongodb") == {"daemon", "dashboard", *db}
    es = {"elasticsearch", "elasticsearch-generator", "elasticsearch-adapter"}
    assert active("elasticsearch") == {"daemon", "dashboard", *es}


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_has_exactly_one_source_feeding_the_daemon(profile: str) -> None:
    ours = sorted(active(profile) & set(OURS))
    assert [n for n in ours if feeds_the_daemon(SERVICES[n])] == [
        {"dev": "generator"}.get(profile, f"{profile}-adapter")
    ]


def test_the_daemon_has_a_healthcheck_on_health() -> None:
    check = SERVICES["daemon"]["healthcheck"]
    assert f"http://127.0.0.1:{DAEMON_PORT}/health" in " ".join(check["test"])
    assert not check.get("disable") and check["retries"] >= 1


@pytest.mark.parametrize("name", sorted(set(OURS) - {"daemon"}))
def test_clients_wait_for_healthy_services(name: str) -> None:
    """Dashboard, adapters and the dev generator start once the daemon is healthy; the
    database generators and adapters once their database is."""
    depends = SERVICES[name]["depends_on"]
    assert all(d["condition"] == "service_healthy" for d in depends.values()), depends
    needs = {SERVICES[name].get("profiles", [""])[0]} & set(DATABASES)
    if not name.endswith("-generator"):
        needs.add("daemon")
    assert set(depends) == needs
    for other in depends:
        check = SERVICES[other]["healthcheck"]
        assert check.get("test") and not check.get("disable"), other


@pytest.mark.parametrize("name", sorted(DATABASES))
def test_databases_are_pinned_with_a_healthcheck(name: str) -> None:
    service = SERVICES[name]
    image = service["image"]
    assert re.search(r":\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$", image), image
    assert service["profiles"] == [name]
    assert f"{DATABASES[name]}:{DATABASES[name]}" in service["ports"][0]
    assert service["healthcheck"]["test"] and service["volumes"]


def test_elasticsearch_is_8x_single_node_without_security() -> None:
    service = SERVICES["elasticsearch"]
    assert service["image"].startswith("docker.elastic.co/elasticsearch/elasticsearch:8.")
    assert service["environment"]["discovery.type"] == "single-node"
    assert service["environment"]["xpack.security.enabled"] == "false"


def test_ports_match_the_settings_defaults() -> None:
    published = {n: [p.split(":")[-2:] for p in s.get("ports", [])] for n, s in SERVICES.items()}
    assert published["daemon"] == [[str(DAEMON_PORT)] * 2]
    assert published["dashboard"] == [[str(DASHBOARD_PORT)] * 2]
    assert published["generator"] == [[str(CONTROL_PORT)] * 2]
    commands = {n: " ".join(SERVICES[n]["command"]) for n in OURS}
    assert f"--port {DAEMON_PORT}" in commands["daemon"]
    assert f"--port {DASHBOARD_PORT}" in commands["dashboard"]
    assert f"--control-port {CONTROL_PORT}" in commands["generator"]
    for name in ("dashboard", "generator"):
        assert f"http://daemon:{DAEMON_PORT}" in commands[name]


def test_state_lives_in_named_volumes() -> None:
    declared = set(COMPOSE["volumes"])
    for name in ("daemon", "mongodb-adapter", "elasticsearch-adapter", *DATABASES):
        named = [v.split(":")[0] for v in SERVICES[name]["volumes"] if not v.startswith(".")]
        assert named and set(named) <= declared, (name, named)


def test_the_api_key_comes_from_the_repository_env_file() -> None:
    for name in OURS:
        assert (COMPOSE_FILE.parent / SERVICES[name]["env_file"]).resolve() == ROOT / ".env"
        assert "TFT_API_KEY" not in json.dumps(SERVICES[name].get("environment", {}))


# --- references ----------------------------------------------------------------------


@pytest.mark.parametrize("name", OURS)
def test_referenced_files_exist(name: str) -> None:
    """Fails for the adapters until adapters/*_adapter.py exist."""
    service = SERVICES[name]
    context = (COMPOSE_FILE.parent / service["build"]["context"]).resolve()
    assert context == ROOT and (context / service["build"]["dockerfile"]).is_file()
    mounts = [v.split(":")[0] for v in service.get("volumes", []) if v.startswith(".")]
    for source in mounts:
        assert (COMPOSE_FILE.parent / source).is_file(), source
    script, _ = script_of(service["command"])
    assert (ROOT / script).is_file(), f"{name} runs {script}, which does not exist (yet)"


@pytest.mark.parametrize("name", OURS)
def test_command_flags_exist(name: str) -> None:
    """Fails for the adapters until they exist, and for the database generators until
    metrics_generator_daemon.py has --to-mongodb / --to-elasticsearch."""
    script, args = script_of(SERVICES[name]["command"])
    assert unknown_flags(script, args) == [], f"{name}: flags unknown to {script}"


def test_unknown_flags_finds_a_wrong_flag() -> None:
    args = ["--port", "8000", "--no-such-flag", "--host=0.0.0.0", "--po"]
    assert unknown_flags("tft_inference_daemon.py", args) == ["--no-such-flag", "--po"]


def documented() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))


def test_compose_variables_are_in_env_example() -> None:
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    used |= {k for s in SERVICES.values() for k in s.get("environment", {}) if k.startswith("TFT")}
    assert used - documented() == set()


def test_every_tft_variable_of_the_deploy_files_is_in_env_example() -> None:
    """Fails until .env.example lists the deploy scripts' own settings (see deploy/README)."""
    files = [p for p in (ROOT / "deploy").rglob("*") if p.suffix not in (".md", ".pyc")]
    files = [p for p in files if p.is_file()]
    used = {v for p in files for v in re.findall(r"\bTFT_[A-Z0-9_]+\b", p.read_text())}
    assert sorted(used - documented()) == []


# --- adapter configs -------------------------------------------------------------------


def test_adapter_configs_point_at_the_compose_services() -> None:
    mongo = json.loads((DOCKER / "mongodb_adapter_config.json").read_text())
    es = json.loads((DOCKER / "elasticsearch_adapter_config.json").read_text())
    assert mongo["database"]["host"] == "mongodb"
    assert mongo["database"]["port"] == DATABASES["mongodb"]
    assert mongo["database"]["collection"] == "server_metrics"
    assert es["elasticsearch"]["hosts"] == [f"http://elasticsearch:{DATABASES['elasticsearch']}"]
    assert es["elasticsearch"]["index_pattern"] == "server-metrics"
    for config in (mongo, es):
        assert config["tft_daemon"]["url"] == f"http://daemon:{DAEMON_PORT}"
        assert config["fetch_interval"] == 5 and config["batch_size"] == 1000
        assert next(iter(config.values()))["time_field"] == "timestamp"
    assert "mongodb://mongodb:27017" in SERVICES["mongodb-generator"]["command"]
    assert "http://elasticsearch:9200" in SERVICES["elasticsearch-generator"]["command"]


@pytest.mark.parametrize("source", sorted(DATABASES))
def test_adapter_configs_are_valid_for_their_adapter(source: str) -> None:
    """The adapter's own config model accepts the compose config. Fails until
    adapters/{source}_adapter.py exists."""
    config = importlib.import_module("adapters.config")
    module = importlib.import_module(f"adapters.{source}_adapter")
    models = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, config.AdapterConfig)
        and value is not config.AdapterConfig
    ]
    assert len(models) == 1, models
    config.load_config(DOCKER / f"{source}_adapter_config.json", models[0])


# --- Dockerfile ----------------------------------------------------------------------


def dockerfile_lines() -> list[str]:
    """Instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (DOCKER / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_dockerfile_is_pinned_non_root_and_healthchecked() -> None:
    lines = dockerfile_lines()
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    pinned = re.compile(r":\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$")  # x.y.z tag [+ digest]
    assert bases and all(pinned.search(base) for base in bases), bases
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    health = [line for line in lines if line.startswith("HEALTHCHECK ")]
    assert len(health) == 1 and f"127.0.0.1:{DAEMON_PORT}/health" in health[0]


def test_dockerfile_installs_cpu_torch_before_the_project() -> None:
    runs = [line for line in dockerfile_lines() if line.startswith("RUN ")]
    torch = [i for i, line in enumerate(runs) if "torch==2.13.0" in line]
    project = [i for i, line in enumerate(runs) if re.search(r"pip install [^|&]*\.(\s|$)", line)]
    assert torch and project and torch[0] < project[0], runs
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in dockerfile_lines()
    assert '--index-url "$TORCH_INDEX_URL" torch==2.13.0' in runs[torch[0]]


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert {".env", ".venv/", "state/", ".git/"} <= set(ignored)
