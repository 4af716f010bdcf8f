"""End to end: the daemon as a real process on a free port, fed 24 h of generated data,
serving TFT forecasts; SIGTERM saves its state and a restart needs no new warmup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pandas as pd
import pytest

from fleet.generate import generate_fleet
from tests.daemon_helpers import AUTH, KEY, free_port, start_daemon, wait_for

ROOT = Path(__file__).resolve().parents[1]
SERVERS = 3


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    port, log = free_port(), tmp_path / "daemon.log"
    process = start_daemon(port, tmp_path / "state", log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, 90, "startup", log)
        yield url, process, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def feed_day(url: str) -> None:
    frame = generate_fleet(n_servers=SERVERS, days=1.1, seed=11).frame
    # moved by whole steps to end now: the daemon's clock would call older data silent
    now = pd.Timestamp.now("UTC").floor("5min")
    frame["timestamp"] += now - frame["timestamp"].max()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    records = frame.to_dict("records")
    for start in range(0, len(records), 500):
        body = orjson.dumps(records[start : start + 500])
        response = httpx.post(f"{url}/feed", content=body, headers=AUTH, timeout=30)
        assert response.status_code == 200, response.text


def forecasts(url: str) -> dict:
    body = httpx.get(f"{url}/predict", headers=AUTH, timeout=30).json()
    ready = [v for v in body["predictions"].values() if v["forecast_status"] == "ok"]
    return body if len(ready) == SERVERS else {}


def test_daemon_process_feeds_forecasts_and_restarts_warm(
    daemon: tuple[str, subprocess.Popen, Path], tmp_path: Path
) -> None:
    url, process, log = daemon
    feed_day(url)
    body = wait_for(lambda: forecasts(url), 60, "forecasts", log)
    assert body["model"]["kind"] == "tft" and body["model"]["name"].startswith("tft_model_")
    entry = next(iter(body["predictions"].values()))
    assert 0 <= entry["risk_score"] <= 100
    assert 0 <= entry["predictions_8h"]["cpu_idle_pct"] <= 100

    process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal (systemd counts it as clean)
    assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text()
    assert (tmp_path / "state" / "daemon_state.npz").exists()

    port = free_port()
    restarted = start_daemon(port, tmp_path / "state", log)
    try:
        url = f"http://127.0.0.1:{port}"
        again = wait_for(lambda: forecasts(url), 90, "restored forecasts", log)
        assert again["fleet"]["ready"] == SERVERS  # no new warmup
        assert again["predictions"].keys() == body["predictions"].keys()
    finally:
        restarted.terminate()
        restarted.wait(timeout=30)


def test_daemon_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "TFT_API_KEY"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "tft_inference_daemon.py"), "--port", str(free_port())],
        cwd=tmp_path,  # no .env here
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no API key" in result.stderr and "--insecure-no-auth" in result.stderr


def test_daemon_refuses_to_start_without_a_model(tmp_path: Path) -> None:
    command = [sys.executable, "tft_inference_daemon.py", "--port", str(free_port())]
    command += ["--model", str(tmp_path / "missing"), "--state-dir", str(tmp_path / "state")]
    environment = {**os.environ, "TFT_API_KEY": KEY}
    result = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=90
    )
    assert result.returncode != 0
    assert "cannot load the TFT model" in result.stderr
