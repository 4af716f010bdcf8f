"""The stack end to end: the metrics generator daemon backfills and streams into a real
inference daemon process; a scenario switch on its control API raises the affected
server's risk in /predict within a stated number of simulated steps."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.daemon_helpers import AUTH, KEY, ROOT, free_port, start_daemon, wait_for

SERVERS = 7  # one server of each profile
TARGET = "ppdb001"
# At --interval 0.5 --speed 600 each tick is one 5-minute step (two steps per second).
RISK_WITHIN_STEPS = 12  # critical within an hour of simulated time


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    log = tmp_path / "stack.log"
    daemon_port, control_port = free_port(), free_port()
    daemon = start_daemon(daemon_port, tmp_path / "state", log)
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
    daemon = start_daemon(port, tmp_path / "state", log)
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
        daemon = start_daemon(port, tmp_path / "state", log)
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, 90, "restart", log)
        time.sleep(3)
    finally:
        generator.terminate()
        generator.wait(timeout=60)
    try:
        text = log.read_text()
        counts = re.search(r"Stopped: (\d+) records produced, (\d+) forwarded", text)
        assert counts is not None, text[-2000:]
        produced, forwarded = map(int, counts.groups())
        held = httpx.get(f"{url}/health").json()["ticks_held"]
        assert produced == forwarded == held, (produced, forwarded, held)
        assert "restored 3 servers" in text
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
