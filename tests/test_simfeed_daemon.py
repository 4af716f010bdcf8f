"""The metrics generator daemon (simfeed.daemon): settings, CLI, and one end-to-end run
with real sockets.

The end-to-end test runs metrics_generator_daemon.py (the entry script) as a real process
against a stub /feed receiver (stdlib HTTP server in a thread: checks the key, validates
every record as data_contract.MetricRecord, stores the batches in arrival order), stops the
stub for 1.5 seconds while ticks keep coming, starts it again, and checks that every record
the generator produced arrived exactly once, in order per server. Unit tests of the parts
are in test_simfeed.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import uvicorn
from pydantic import TypeAdapter, ValidationError

import data_contract as dc
from simfeed import daemon
from simfeed.runner import make_client
from simfeed.sender import FeedSender
from simfeed.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
KEY = "e2e" + "0" * 61


# --- settings and CLI ----------------------------------------------------------------


def test_settings_need_a_key_unless_insecure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TFT_API_KEY", raising=False)
    with pytest.raises(ValidationError, match="generate_api_key"):
        Settings(_env_file=None)
    with pytest.raises(ValidationError, match="TFT_API_KEY is not set"):
        Settings(_env_file=None, api_key="  ")
    assert Settings(_env_file=None, insecure_no_auth=True).key() is None


def test_settings_from_env_file_and_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TFT_API_KEY", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text(f"TFT_API_KEY={KEY}\nTFT_OTHER_COMPONENT=x\nTFT_GENERATOR_SEED=7\n")
    monkeypatch.setenv("TFT_GENERATOR_SERVERS", "9")
    monkeypatch.setenv("TFT_GENERATOR_SCENARIO_SERVERS", '["ppdb001"]')
    settings = Settings(_env_file=env_file, servers=11)
    assert settings.key() == KEY and KEY not in repr(settings)
    assert (settings.servers, settings.seed, settings.scenario_servers) == (11, 7, ["ppdb001"])
    assert settings.daemon_url == "http://localhost:8000"
    with pytest.raises(ValidationError):
        Settings(_env_file=env_file, batch_size=6000)  # at most 5,000 records per POST
    with pytest.raises(ValidationError):
        Settings(_env_file=env_file, daemon_url="localhost:8000")


def test_cli_flags_override_only_what_is_given() -> None:
    args = daemon.parse_args(
        ["--servers", "5", "--scenario", "cascade", "--scenario-servers", "ppdb001, ppdb002"]
    )
    assert args == {"servers": 5, "scenario": "cascade", "scenario_servers": ["ppdb001", "ppdb002"]}
    assert daemon.parse_args(["--insecure-no-auth"]) == {"insecure_no_auth": True}
    with pytest.raises(SystemExit):
        daemon.parse_args(["--scenario", "meteor"])


def test_write_cores_for_the_daemons_load_per_core(tmp_path: Path) -> None:
    path = tmp_path / "cores.json"
    assert daemon.main(["--servers", "20", "--write-cores", str(path)]) == 0
    cores = json.loads(path.read_text())
    assert len(cores) == 20
    some = {name: cores[name] for name in ("ppml0001", "ppdb001", "ppweb001", "ppgen001")}
    assert some == {"ppml0001": 32, "ppdb001": 16, "ppweb001": 8, "ppgen001": 4}


@pytest.fixture
def quiet_main(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() without its logging setup (which would replace pytest's log capture)."""
    monkeypatch.setattr(daemon, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setenv("TFT_API_KEY", KEY)


@pytest.mark.usefixtures("quiet_main")
def test_main_refuses_bad_settings_without_showing_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert daemon.main(["--batch-size", "6000"]) == 2
    assert daemon.main(["--buffer-records", "10", "--batch-size", "100"]) == 2
    assert "batch_size" in caplog.text and "buffer_records must be at least" in caplog.text
    assert KEY not in caplog.text


@pytest.mark.usefixtures("quiet_main")
def test_main_refuses_unknown_scenario_servers_and_a_busy_port(
    caplog: pytest.LogCaptureFixture,
) -> None:
    common = ["--backfill-hours", "0", "--daemon-url", "http://127.0.0.1:9"]
    bad = ["--scenario", "critical", "--scenario-servers", "nope001", "--control-port", "0"]
    assert daemon.main(common + bad) == 2
    assert "unknown server(s): nope001" in caplog.text
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert daemon.main([*common, "--control-port", str(port)]) == 2
    assert "Cannot start" in caplog.text


# --- end to end ----------------------------------------------------------------------

RECORDS = TypeAdapter(list[dc.MetricRecord])


class FeedStub:
    """A stand-in for the daemon's /feed and /health, restartable on the same port."""

    def __init__(self, key: str) -> None:
        self.key, self.port = key, 0
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self.lock:
            return len(self.records)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.reply(200, {"status": "ok"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers.get("X-API-Key")
                if self.path != "/feed" or key != stub.key:
                    self.reply(404 if self.path != "/feed" else 401 if not key else 403, {})
                    return
                batch = json.loads(body)
                try:
                    RECORDS.validate_python(batch)
                except ValidationError as exc:
                    self.reply(422, {"detail": dc.describe_validation_errors(exc)})
                    return
                with stub.lock:
                    stub.records.extend(batch)
                self.reply(200, {"status": "ok", "received": len(batch), "warmup_progress": 1.0})

        return Handler


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


SERVERS, INTERVAL, SPEED, TICK = 5, 0.2, 60, 12  # 12 simulated seconds per 0.2 s interval


def run_generator(stub: FeedStub, control_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "TFT_API_KEY": KEY,
        "TFT_GENERATOR_BACKOFF_INITIAL_S": "0.2",
        "TFT_GENERATOR_BACKOFF_MAX_S": "0.5",
    }
    # fmt: off
    cmd = [sys.executable, str(ROOT / "metrics_generator_daemon.py"),
           "--daemon-url", f"http://127.0.0.1:{stub.port}", "--servers", str(SERVERS),
           "--interval", str(INTERVAL), "--speed", str(SPEED), "--backfill-hours", "1",
           "--seed", "3", "--control-port", str(control_port), "--batch-size", "25"]
    # fmt: on
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def check_control_api(port: int) -> None:
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _up(url), timeout=10)
    assert httpx.get(f"{url}/scenario").status_code == 401
    switched = httpx.post(
        f"{url}/scenario", json={"scenario": "cascade"}, headers={"X-API-Key": KEY}
    )
    assert switched.status_code == 200, switched.text
    assert switched.json()["servers"] == ["ppdb001"]
    state = httpx.get(f"{url}/scenario", headers={"X-API-Key": KEY}).json()
    assert state["scenario"] == "cascade" and "ppdb001" in state["affected"]


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health").status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_end_to_end_backfill_stream_outage_loses_nothing(tmp_path: Path) -> None:
    stub, control_port, log = FeedStub(KEY), free_port(), tmp_path / "generator.log"
    stub.start()
    proc = run_generator(stub, control_port, log)
    try:
        wait_until(lambda: stub.count() >= 12 * SERVERS + 5 * SERVERS)  # backfill + 5 ticks
        check_control_api(control_port)
        stub.stop()
        before = stub.count()
        time.sleep(1.5)  # about 7 ticks are produced meanwhile
        stub.start()
        wait_until(lambda: stub.count() >= before + 12 * SERVERS)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        stub.stop()
    text = log.read_text()
    assert rc == 0, text
    stopped = re.search(
        r"Stopped: (\d+) records produced, (\d+) forwarded \((\d+) applied, 0 duplicates, "
        r"0 stale, 0 rejected by the daemon\)",
        text,
    )
    assert stopped and stopped[1] == stopped[2] == stopped[3], text
    assert re.search(r"0 dropped \(buffer full\), 0 unsent", text), text
    assert "TFT daemon unavailable" in text and "reachable again" in text
    assert "Forwarded 25 records to TFT daemon" in text
    backfilled = int(re.search(r"Backfill done: (\d+) records", text)[1])
    check_arrivals(pd.DataFrame(stub.records), int(stopped[1]), backfilled)


def check_arrivals(frame: pd.DataFrame, produced: int, backfilled: int) -> None:
    """Every produced record exactly once; per server in time order; backfill on the
    5-minute grid ending where streaming starts, streaming on the tick grid."""
    assert len(frame) == produced
    assert not frame.duplicated(["server_name", "timestamp"]).any()
    frame["ts"] = pd.to_datetime(frame["timestamp"])
    assert frame.groupby("server_name")["ts"].apply(lambda s: s.is_monotonic_increasing).all()
    past, live = frame.iloc[:backfilled], frame.iloc[backfilled:]
    end = past["ts"].max() + pd.Timedelta(minutes=5)
    assert past["ts"].min() == end - pd.Timedelta(hours=1)
    assert (past["ts"].dt.floor("5min") == past["ts"]).all()
    assert len(past) >= 0.75 * 12 * SERVERS  # (offline steps send nothing)
    assert live["ts"].min() == end and live["ts"].nunique() >= 15
    offsets = (live["ts"] - end).dt.total_seconds()
    assert (offsets % TICK == 0).all()


# --- keep-alive against a real uvicorn ------------------------------------------------


def counting_app(ports: list[int]) -> Any:
    """A bare ASGI /feed that notes each request's client port (one per connection)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        ports.append(scope["client"][1])
        body = b'{"status": "ok", "received": 1, "applied": 1}'
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.slow
def test_the_client_lets_idle_connections_go_before_uvicorn_closes_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """uvicorn with a 1 s keep-alive, the generator's client with 0.5 s: a POST every
    1.2 s opens a fresh connection each time (never one uvicorn is closing) and none
    fails; POSTs 0.1 s apart share one connection."""
    ports: list[int] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(counting_app(ports), timeout_keep_alive=1, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(_env_file=None, api_key=KEY, daemon_url=url, keepalive_s=0.5)
    try:
        wait_until(lambda: server.started, timeout=10)
        with make_client(settings) as client:
            sender = FeedSender(client, batch_size=10, max_records=100)
            for gap in (1.2, 1.2, 1.2, 0.1, 0.1, 0.1):
                sender.enqueue([{"i": 0}])
                assert sender.flush() is True
                time.sleep(gap)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert sender.stats.failures == 0 and sender.stats.applied == 6
    assert "unavailable" not in caplog.text and "resending" not in caplog.text
    assert len(set(ports[:4])) == 4  # a new connection after each 1.2 s pause
    assert len(set(ports[3:])) == 1  # kept while the POSTs come faster than 0.5 s
