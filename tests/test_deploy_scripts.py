"""deploy/start_all_production.sh and deploy/stop_all.sh for real, and the Windows scripts
statically.

The start script runs the daemon, the generator and the dashboard on free ports with a tmp
run dir, state dir and env file (so the developer's .env is neither read for the key nor
written); the daemon then serves forecasts of the generator's servers under the key the
script generated; a second start is refused; stop_all.sh stops exactly the started
processes: a decoy whose command line names the daemon's script, and another whose pid sits
in a pid file of a process it does not run, both survive.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adapter_helpers import contract_docs, now_step
from tests.daemon_helpers import ROOT, free_port, wait_for
from tests.protocol_fakes.elasticsearch import ElasticsearchFake
from tests.protocol_fakes.mongodb import MongoFake
from tests.test_deploy_docker import unknown_flags

DEPLOY = ROOT / "deploy"
SERVERS = 3
STARTED = ("daemon", "generator", "dashboard")
SLEEP = [sys.executable, "-c", "import time; time.sleep(300)"]


def alive(pid: int) -> bool:
    """Running, not a zombie nor exiting (a process past exit has an empty command line)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X") and cmdline != b""


def run_script(name: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(DEPLOY / name)],
        cwd=env["TEST_CWD"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of the scripts; afterwards, any process they left is killed."""
    env = {k: v for k, v in os.environ.items() if k != "TFT_API_KEY"}
    env.update(
        PYTHON=sys.executable,
        TEST_CWD=str(tmp_path),
        TFT_ENV_FILE="stack.env",  # relative: taken from the current folder, tmp_path
        TFT_RUN_DIR=str(tmp_path / "run"),
        TFT_STATE_DIR=str(tmp_path / "state"),
        TFT_PORT=str(free_port()),
        TFT_DASHBOARD_PORT=str(free_port()),
        TFT_GENERATOR_CONTROL_PORT=str(free_port()),
        TFT_GENERATOR_SERVERS=str(SERVERS),
        TFT_COALESCE_S="0.2",
    )
    yield env
    for pid_file in (tmp_path / "run").glob("*.pid"):
        pid = int(pid_file.read_text())
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def all_forecast(url: str, key: str) -> bool:
    body = httpx.get(f"{url}/predict", headers={"X-API-Key": key}, timeout=30).json()
    done = [v for v in body["predictions"].values() if v["forecast_status"] == "ok"]
    return len(done) == SERVERS


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_start_serves_forecasts_and_stop_stops_exactly_the_started(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    started = run_script("start_all_production.sh", stack_env, timeout=240)
    assert started.returncode == 0, started.stdout + started.stderr
    run_dir, log = tmp_path / "run", tmp_path / "run" / "daemon.log"
    pids = {name: int((run_dir / f"{name}.pid").read_text()) for name in STARTED}
    assert all(alive(pid) for pid in pids.values()), pids
    url = f"http://127.0.0.1:{stack_env['TFT_PORT']}"
    dashboard = f"http://127.0.0.1:{stack_env['TFT_DASHBOARD_PORT']}"
    assert url in started.stdout and dashboard in started.stdout
    assert httpx.get(f"{url}/health", timeout=10).json()["model_loaded"] is True
    page = httpx.get(f"{dashboard}/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()

    env_file = tmp_path / "stack.env"
    key = re.search(r"^TFT_API_KEY=(\w+)$", env_file.read_text(), re.M).group(1)
    assert env_file.stat().st_mode & 0o777 == 0o600
    wait_for(lambda: all_forecast(url, key), 150, "forecasts of every server", log)

    again = run_script("start_all_production.sh", stack_env, timeout=60)
    assert again.returncode != 0 and "already running" in again.stderr
    assert {n: int((run_dir / f"{n}.pid").read_text()) for n in STARTED} == pids

    decoys = [subprocess.Popen([*SLEEP, "tft_inference_daemon.py"]), subprocess.Popen(SLEEP)]
    try:
        (run_dir / "mongodb.pid").write_text(f"{decoys[1].pid}\n")
        stopped = run_script("stop_all.sh", stack_env, timeout=180)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert [name for name, pid in pids.items() if alive(pid)] == []
        assert all(decoy.poll() is None for decoy in decoys)
        assert list(run_dir.glob("*.pid")) == []
        assert {p.name for p in run_dir.glob("*.log")} == {f"{n}.log" for n in STARTED}
    finally:
        for decoy in decoys:
            decoy.kill()
            decoy.wait(timeout=30)


@contextmanager
def database(source: str) -> Iterator[dict[str, Any]]:
    """A protocol fake holding a day of history of SERVERS servers; its config section."""
    if source == "mongodb":
        with MongoFake() as mongo:
            mongo.insert_many(
                "monitoring", "server_metrics", contract_docs(SERVERS, 290, now_step())
            )
            yield {"database": {"uri": mongo.uri, "database": "monitoring",
                                "collection": "server_metrics"}}  # fmt: skip
        return
    with ElasticsearchFake() as es:
        es.index_docs("server-metrics", contract_docs(SERVERS, 290, now_step(), iso=True))
        yield {"elasticsearch": {"hosts": [es.url], "index_pattern": "server-metrics",
                                 "time_field": "timestamp"}}  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("source", ["mongodb", "elasticsearch"])
def test_a_database_source_runs_the_production_path(
    stack_env: dict[str, str], tmp_path: Path, source: str
) -> None:
    """SOURCE=mongodb|elasticsearch: the database (a protocol fake with a day of history)
    -> the adapter, which backfills on its first start -> the daemon, which forecasts
    every server; stop_all.sh stops the three."""
    key = "deploy-test-key-0123456789abcdef"
    env_file = tmp_path / "stack.env"
    env_file.write_text(f"TFT_API_KEY={key}\n")
    env_file.chmod(0o600)
    url = f"http://127.0.0.1:{stack_env['TFT_PORT']}"
    with database(source) as section:
        config = tmp_path / f"{source}.json"
        config.write_text(json.dumps(section | {"tft_daemon": {"url": url, "api_key": key}}))
        env = {**stack_env, "SOURCE": source, "TFT_ADAPTER_CONFIG": str(config)}
        started = run_script("start_all_production.sh", env, timeout=240)
        assert started.returncode == 0, started.stdout + started.stderr
        log = tmp_path / "run" / "daemon.log"
        wait_for(lambda: all_forecast(url, key), 150, "forecasts of every server", log)
        stopped = run_script("stop_all.sh", env, timeout=180)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert list((tmp_path / "run").glob("*.pid")) == []
    assert (tmp_path / "state" / f"{source}_adapter_state.json").is_file()


@pytest.mark.slow
def test_a_daemon_that_cannot_start_is_reported_with_its_log(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    """The daemon's port is taken: the script names the daemon's log and leaves no pid file."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(stack_env["TFT_PORT"])))
        taken.listen()
        done = run_script("start_all_production.sh", stack_env, timeout=240)
    log = tmp_path / "run" / "daemon.log"
    assert done.returncode != 0 and str(log) in done.stderr, done.stderr
    assert "address already in use" in log.read_text().lower()
    assert list((tmp_path / "run").glob("*.pid")) == []


def test_start_fails_clearly_on_an_unknown_source(stack_env: dict[str, str]) -> None:
    done = run_script("start_all_production.sh", {**stack_env, "SOURCE": "kafka"}, timeout=60)
    assert done.returncode != 0 and "SOURCE=kafka" in done.stderr


def test_stop_without_pid_files_does_nothing(stack_env: dict[str, str], tmp_path: Path) -> None:
    done = run_script("stop_all.sh", stack_env, timeout=60)
    assert done.returncode == 0 and "stopping" not in done.stdout
    assert not (tmp_path / "run").exists()


# --- Windows: cannot run here; every file they reference must exist ----------------------

WINDOWS = ("start_all_production.bat", "install_services_nssm.ps1")
REFERENCE = re.compile(r"[\w.\\/-]+\.(?:py|json|bat|ps1|sh)\b")


@pytest.mark.parametrize("name", WINDOWS)
def test_windows_scripts_reference_existing_files(name: str) -> None:
    """Fails until adapters/*_adapter.py and their configs exist."""
    text = (DEPLOY / name).read_text()
    references = {m.replace("\\", "/").lstrip("./") for m in REFERENCE.findall(text)}
    assert {"tft_inference_daemon.py", "dash_app.py", "generate_api_key.py"} <= references
    missing = sorted(r for r in references if not (ROOT / r).is_file())
    assert missing == [], f"{name} references missing files"


@pytest.mark.parametrize("name", WINDOWS)
def test_windows_scripts_use_known_flags(name: str) -> None:
    """Each line running one of our scripts gives it only flags in its --help."""
    scripts = re.compile(r"((?:adapters[\\/])?\w+\.py)\b(.*)")
    for line in (DEPLOY / name).read_text().splitlines():
        found = scripts.search(line)
        if found and (ROOT / found.group(1).replace("\\", "/")).is_file():
            script, rest = found.group(1).replace("\\", "/"), found.group(2)
            flags = re.findall(r"(?<![\w-])--[\w-]+", rest)
            assert unknown_flags(script, flags) == [], line
