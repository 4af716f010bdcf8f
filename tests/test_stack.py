"""The stack end to end: the metrics generator daemon backfills and streams into a real
inference daemon process; a scenario switch on its control API raises the affected
server's risk in /predict within a stated number of simulated steps; the curl commands
that deploy/run_stack.sh prints (and README.md shows) work as written.

The generator runs at --speed 600, so its timestamps run ahead of the wall clock: the
daemon is started with TFT_MAX_CLOCK_SKEW_S=0, as deploy/run_stack.sh does above speed 1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.daemon_helpers import AUTH, KEY, ROOT, free_port, start_daemon, wait_for

pytestmark = pytest.mark.slow

SERVERS = 7  # one server of each profile
NO_SKEW_LIMIT = {"TFT_MAX_CLOCK_SKEW_S": "0"}  # the generator runs ahead of the clock
TARGET = "ppdb001"
# At --interval 0.5 --speed 600 each tick is one 5-minute step (two steps per second).
RISK_WITHIN_STEPS = 12  # critical within an hour of simulated time


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    log = tmp_path / "stack.log"
    daemon_port, control_port = free_port(), free_port()
    daemon = start_daemon(daemon_port, tmp_path / "state", log, **NO_SKEW_LIMIT)
    url = f"http://127.0.0.1:{daemon_port}"
    generator = None
    try:
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, 90, "daemon", log)
        command = [sys.executable, "metrics_generator_daemon.py", "--daemon-url", url]
        command += ["--servers", str(SERVERS), "--interval", "0.5", "--speed", "600"]
        command += ["--control-port", str(control_port), "--seed", "3"]
        with open(log, "ab") as out:
            generator = subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, "TFT_API_KEY": KEY}, stdout=out, stderr=out
            )
        yield url, f"http://127.0.0.1:{control_port}", log
    finally:
        for process in (generator, daemon):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


def entry(url: str, server: str) -> dict:
    body = httpx.get(f"{url}/predict", params={"servers": server}, headers=AUTH, timeout=30)
    return body.json()["predictions"].get(server, {})


def test_generator_feeds_the_daemon_and_a_scenario_raises_risk(
    stack: tuple[str, str, Path],
) -> None:
    url, control, log = stack

    def all_forecast() -> dict:
        body = httpx.get(f"{url}/predict", headers=AUTH, timeout=30).json()
        done = [v for v in body["predictions"].values() if v["forecast_status"] == "ok"]
        return body if len(done) == SERVERS else {}

    body = wait_for(all_forecast, 60, "forecasts after the backfill", log)
    assert body["model"]["kind"] == "tft" and TARGET in body["predictions"]
    switch = httpx.post(
        f"{control}/scenario",
        json={"scenario": "critical", "servers": [TARGET]},
        headers=AUTH,
        timeout=30,
    )
    assert switch.status_code == 200, switch.text
    before = entry(url, TARGET)["forecast_origin"]

    def critical() -> dict:
        current = entry(url, TARGET)
        return current if (current.get("risk_score") or 0) >= 70 else {}

    reached = wait_for(critical, 60, f"{TARGET} at critical risk", log)
    steps = (_epoch(reached["forecast_origin"]) - _epoch(before)) // 300
    assert steps <= RISK_WITHIN_STEPS, f"risk reached 70 only after {steps} steps"
    assert reached["risk_level"] == "critical" and reached["risk_factors"]
    assert "Forwarded" in log.read_text()


def _epoch(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def test_a_daemon_restart_loses_no_tick(tmp_path: Path) -> None:
    """The daemon stops (saving its state) and starts again on the same port while the
    generator streams: every tick the generator produced ends up in the daemon once."""
    log, port = tmp_path / "stack.log", free_port()
    url = f"http://127.0.0.1:{port}"
    daemon = start_daemon(port, tmp_path / "state", log, **NO_SKEW_LIMIT)
    wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, 90, "daemon", log)
    command = [sys.executable, "metrics_generator_daemon.py", "--daemon-url", url]
    command += ["--servers", "3", "--interval", "0.5", "--speed", "600"]
    command += ["--backfill-hours", "2", "--control-port", "0"]
    with open(log, "ab") as out:
        generator = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "TFT_API_KEY": KEY}, stdout=out, stderr=out
        )
    try:
        wait_for(lambda: "Backfill done" in log.read_text(), 60, "the backfill", log)
        daemon.terminate()
        daemon.wait(timeout=30)
        time.sleep(2)  # ticks pile up in the generator's buffer meanwhile
        daemon = start_daemon(port, tmp_path / "state", log, **NO_SKEW_LIMIT)
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, 90, "restart", log)
        time.sleep(3)
    finally:
        generator.terminate()
        generator.wait(timeout=60)
    try:
        text = log.read_text()
        counts = re.search(
            r"Stopped: (\d+) records produced, (\d+) forwarded \((\d+) applied, (\d+) "
            r"duplicates, 0 stale, 0 rejected",
            text,
        )
        assert counts is not None, text[-2000:]
        produced, forwarded, applied, duplicates = map(int, counts.groups())
        held = httpx.get(f"{url}/health").json()["ticks_held"]
        assert produced == forwarded == applied + duplicates, counts.groups()
        assert applied == held, (applied, held)
        assert "restored 3 servers" in text
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def printed_commands() -> list[str]:
    """The curl lines of run_stack.sh's start message and of README.md's stack section."""
    script = (ROOT / "deploy" / "run_stack.sh").read_text()
    message = script.split("cat <<'TEXT'\n", 1)[1].split("\nTEXT\n", 1)[0]
    blocks = [b.split("```", 1)[0] for b in (ROOT / "README.md").read_text().split("```bash\n")]
    stack = [b for b in blocks[1:] if "KEY=$(grep ^TFT_API_KEY= .env" in b]  # the demo's
    assert stack, "README.md has no block of the demo's commands"
    lines = [line.strip() for line in "\n".join([message, *stack]).splitlines()]
    return list(dict.fromkeys(line for line in lines if line.startswith("curl ")))


def run_command(line: str, url: str, control: str) -> str:
    """One printed command as a user pastes it (bash, $KEY set), on the test's ports."""
    line = line.replace("http://127.0.0.1:8000", url).replace("http://127.0.0.1:8001", control)
    done = subprocess.run(
        ["bash", "-c", line],
        env={**os.environ, "KEY": KEY},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_printed_curl_commands_work(stack: tuple[str, str, Path]) -> None:
    url, control, log = stack
    commands = printed_commands()
    assert len(commands) >= 4 and any("/scenario" in c and " -d " in c for c in commands)
    wait_for(lambda: httpx.get(f"{control}/health").status_code == 200, 60, "control API", log)
    for line in commands:
        out = run_command(line, url, control)
        assert out.startswith("{") and '"detail"' not in out, (line, out[:300])
        if "/scenario" in line:  # curl -d: Content-Type application/x-www-form-urlencoded
            assert json.loads(out)["scenario"] == "cascade", out
        elif "| head" not in line:  # the others are whole JSON objects
            assert isinstance(json.loads(out), dict), (line, out[:300])
