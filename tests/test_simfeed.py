"""Unit tests of the simfeed package (no sockets): timing, records, backfill, the sender's
bounded retry buffer, scenarios on the simulator, and the control API over ASGI."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

import data_contract as dc
import risk
from feedclient.answer import FeedAnswer
from fleet.events import Incident
from fleet.profiles import PROFILE_BY_NAME
from fleet.simulator import FleetSimulator
from simfeed import scenarios as sc
from simfeed.control import create_control_app
from simfeed.records import aggregate_steps, to_records
from simfeed.runner import (
    _finish,
    backfill,
    build_controller,
    feed_status,
    make_client,
    warn_if_ahead,
)
from simfeed.scenarios import ScenarioController, ScenarioError
from simfeed.sender import FeedSender
from simfeed.settings import Settings
from simfeed.timing import (
    StreamClock,
    backfill_window,
    next_wake,
    tick_seconds,
)

KEY = "k" * 64
NOW = pd.Timestamp("2025-03-05T12:03:07Z")  # a Wednesday
STEP = pd.Timedelta(minutes=5)


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"api_key": KEY, "control_port": 0} | overrides
    return Settings(_env_file=None, **values)


# --- timing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "speed", "tick"),
    [(5, 1, 5), (5, 120, 300), (5, 12, 60), (1, 1, 1), (0.2, 60, 12), (7, 1, 6), (5, 7, 30)],
)
def test_tick_is_the_largest_divisor_of_300_the_interval_covers(
    interval: float, speed: float, tick: int
) -> None:
    assert tick_seconds(interval, speed) == tick
    assert 300 % tick == 0
    assert tick_seconds(0.1, 1) == 1  # never below one second


def test_backfill_window_ends_at_now_floored_to_5_minutes() -> None:
    start, end = backfill_window(NOW, 24)
    assert end == pd.Timestamp("2025-03-05T12:00:00Z")
    assert end - start == pd.Timedelta(hours=24)
    assert backfill_window(NOW, 0) == (end, end)
    assert backfill_window(NOW, 1.01)[0] == end - pd.Timedelta(hours=1)  # whole steps


def test_stream_clock_catches_up_then_runs_at_speed() -> None:
    wall0 = NOW.value / 1e9
    clock = StreamClock(wall0, mono_start=100.0, speed=1, tick=5)
    behind = pd.Timestamp("2025-03-05T12:00:00Z")  # 187 s before the wall clock
    assert clock.steps_due(behind, 100.0) == 38  # ticks 12:00:00 .. 12:03:05
    next_tick = NOW + pd.Timedelta(seconds=3)  # 12:03:10
    assert clock.steps_due(next_tick, 102.9) == 0
    assert clock.steps_due(next_tick, 103.0) == 1
    assert clock.steps_due(next_tick, 108.0) == 2  # 12:03:10 and 12:03:15
    fast = StreamClock(wall0, mono_start=0.0, speed=120, tick=300)
    assert fast.steps_due(NOW, 5.0) == 3  # 600 s covered: now, +300, +600
    assert fast.target(5.0) - wall0 == 600
    assert next_wake(0.0, 5.0, 12.5) == pytest.approx(2.5)
    assert next_wake(0.0, 5.0, 15.0) == pytest.approx(5.0)


# --- records -------------------------------------------------------------------------


def _ticks() -> pd.DataFrame:
    sim = FleetSimulator(n_servers=3, seed=1, step_seconds=60, start="2025-03-05T00:00:00Z")
    return sim.advance(10)  # two 5-minute steps of five 60 s ticks


def test_aggregation_is_what_the_daemon_builds_from_the_ticks() -> None:
    ticks = _ticks()
    out = aggregate_steps(ticks, 60)
    assert list(out.columns) == list(dc.REQUIRED_COLUMNS)
    assert len(out) == 3 * 2
    assert list(out["timestamp"]) == sorted(out["timestamp"])  # time-major
    one = ticks[ticks["server_name"] == "ppdb001"].iloc[5:10]  # its second step
    row = out[(out["server_name"] == "ppdb001")].iloc[1]
    assert row["timestamp"] == pd.Timestamp("2025-03-05T00:05:00Z")
    assert row["mem_used_pct"] == pytest.approx(one["mem_used_pct"].mean())
    assert row["back_close_wait"] == one["back_close_wait"].max()  # counts: the peak
    assert (row["state"], row["uptime_days"]) == (
        one["state"].iloc[-1],
        one["uptime_days"].iloc[-1],
    )
    assert dc.validate_schema(out) == (True, [])


def test_records_are_json_ready_contract_records() -> None:
    records = to_records(aggregate_steps(_ticks(), 60))
    first = records[0]
    assert first["timestamp"] == "2025-03-05T00:00:00Z"
    assert list(first) == list(dc.REQUIRED_COLUMNS)
    for name in dc.INT_COLUMNS:
        assert type(first[name]) is int
    assert all(type(first[m]) is float for m in dc.METRIC_COLUMNS if m not in dc.INT_COLUMNS)
    for record in orjson.loads(orjson.dumps(records)):
        dc.MetricRecord(**record)


# --- a daemon stand-in for the sender and backfill tests -----------------------------


class FakeDaemon:
    """A MockTransport handler: answers from a script of status codes (then 200), keeps the
    records of every accepted POST, and counts every POST's size."""

    def __init__(self, script: list[int | type[Exception]] | None = None) -> None:
        self.script = list(script or [])
        self.received: list[dict[str, Any]] = []
        self.posts: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        self.posts.append(len(body))
        outcome = self.script.pop(0) if self.script else 200
        if isinstance(outcome, type):
            raise outcome("daemon down", request=request)
        if outcome == 422:
            detail = [{"index": 0, "field": "cpu_user_pct", "problem": "bad value"}]
            return httpx.Response(422, json={"detail": detail})
        if outcome != 200:
            return httpx.Response(outcome, json={"detail": f"status {outcome}"})
        self.received.extend(body)
        return httpx.Response(200, json={"status": "ok", "received": len(body)})


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_sender(daemon: FakeDaemon, batch: int = 10, bound: int = 1000) -> FeedSender:
    client = httpx.Client(base_url="http://daemon", transport=httpx.MockTransport(daemon))
    return FeedSender(client, batch, bound, backoff_initial=1.0, backoff_max=8.0, clock=FakeClock())


def recs(first: int, n: int) -> list[dict[str, Any]]:
    return [{"i": i} for i in range(first, first + n)]


# --- backfill ------------------------------------------------------------------------


def test_backfill_sends_one_record_per_server_per_step_ending_at_now() -> None:
    settings = make_settings(servers=20, interval=5, speed=1, backfill_hours=3, batch_size=1000)
    controller, end = build_controller(settings, NOW)
    daemon = FakeDaemon()
    sender = make_sender(daemon, batch=settings.batch_size, bound=settings.buffer_records)
    n = backfill(controller, sender, end, threading.Event())
    start = end - pd.Timedelta(hours=3)
    assert (controller.sim.now, end) == (end, pd.Timestamp("2025-03-05T12:00:00Z"))
    frame = pd.DataFrame(daemon.received)
    assert len(frame) == n == sender.stats.forwarded and sender.pending == 0
    for record in daemon.received[:500]:
        dc.MetricRecord(**record)
    stamps = pd.to_datetime(frame["timestamp"])
    assert stamps.min() == start and stamps.max() == end - STEP
    assert (stamps.dt.floor(STEP) == stamps).all()
    assert not frame.duplicated(["server_name", "timestamp"]).any()
    # exactly the (server, step) pairs in which the simulated server was up
    twin = FleetSimulator(20, settings.seed, 5, start).advance(3 * 720)
    expected = set(zip(twin["server_name"], twin["timestamp"].dt.floor(STEP), strict=True))
    assert set(zip(frame["server_name"], stamps, strict=True)) == expected
    assert len(expected) >= 0.98 * 20 * 36
    # chunked: full batches, then the tail
    assert daemon.posts == [1000] * (n // 1000) + ([n % 1000] if n % 1000 else [])


def test_backfill_24h_at_300s_ticks_is_288_steps_per_server() -> None:
    settings = make_settings(servers=7, interval=5, speed=120, seed=3, batch_size=500)
    controller, end = build_controller(settings, NOW)
    assert controller.sim.step_seconds == 300
    daemon = FakeDaemon()
    backfill(controller, make_sender(daemon, 500, 50_000), end, threading.Event())
    counts = pd.DataFrame(daemon.received).groupby("server_name").size()
    assert counts.max() == 288 and len(counts) == 7
    assert max(daemon.posts) <= 500


def test_backfill_waits_for_the_daemon_instead_of_overflowing() -> None:
    settings = make_settings(servers=7, interval=5, speed=120, backfill_hours=24)
    controller, end = build_controller(settings, NOW)
    daemon = FakeDaemon([httpx.ConnectError] * 3)
    sender = make_sender(daemon, batch=500, bound=1200)
    clock = sender.clock

    class TickingStop(threading.Event):  # each wait moves the fake clock on
        def wait(self, timeout: float | None = None) -> bool:
            clock.t += timeout or 0
            return False

    backfill(controller, sender, end, TickingStop())
    assert sender.stats.dropped == 0
    assert len(daemon.received) == sender.stats.produced > 1200


# --- the sender ----------------------------------------------------------------------


def test_sender_batches_in_order() -> None:
    daemon = FakeDaemon()
    sender = make_sender(daemon)
    sender.enqueue(recs(0, 25))
    assert sender.flush() is True
    assert daemon.posts == [10, 10, 5]
    assert daemon.received == recs(0, 25)
    assert sender.stats.forwarded == 25


def test_sender_full_only_keeps_a_partial_batch() -> None:
    daemon = FakeDaemon()
    sender = make_sender(daemon)
    sender.enqueue(recs(0, 25))
    assert sender.flush(full_only=True) is False
    assert (daemon.posts, sender.pending) == ([10, 10], 5)


def test_5xx_and_connection_errors_are_retried_with_backoff_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = FakeDaemon([503, httpx.ConnectError, httpx.ReadTimeout, 500, 502])
    sender = make_sender(daemon)
    clock = sender.clock
    delays = []
    for tick in range(5):  # the daemon fails five times while ticks keep coming
        sender.enqueue(recs(tick * 4, 4))
        assert sender.flush() is False
        delays.append(sender.retry_in())
        assert sender.flush() is False  # still backing off: no request
        clock.t += delays[-1]
    assert delays == [1, 2, 4, 8, 8]  # doubling, capped at backoff_max
    assert len(daemon.posts) == 5 and daemon.received == []
    assert "TFT daemon unavailable (HTTP 503)" in caplog.text
    sender.enqueue(recs(20, 4))
    assert sender.flush() is True
    assert daemon.received == recs(0, 24)  # everything, once, in order
    assert sender.stats.failures == 0 and sender.retry_in() == 0


def test_4xx_is_logged_and_dropped_never_retried(caplog: pytest.LogCaptureFixture) -> None:
    daemon = FakeDaemon([422])  # an older daemon: the errors under "detail", no counts
    sender = make_sender(daemon)
    sender.enqueue(recs(0, 15))
    assert sender.flush() is True
    assert daemon.posts == [10, 5]  # the refused batch was sent once
    assert daemon.received == recs(10, 5)
    counts = sender.stats.as_dict()
    assert counts | {"failures": 0} == {
        "produced": 15,
        "forwarded": 15,  # answered for: 10 rejected, then 5 applied
        "applied": 5,
        "duplicates": 0,
        "stale": 0,
        "rejected": 10,
        "dropped": 0,
        "failures": 0,
    }
    assert "rejected 10 of 10 records (HTTP 422), not resent" in caplog.text
    assert "record 0: cpu_user_pct: bad value" in caplog.text  # the daemon's error


def feed_record(server: str, minute: int) -> dict[str, Any]:
    return {"server_name": server, "timestamp": f"2025-03-05T12:{minute:02d}:00Z"}


def counted(status: int, applied: int, duplicates: int, stale: int, errors: list) -> Any:
    """A daemon handler answering every POST with these counts (the partial-acceptance
    /feed answer); it keeps the bodies it got."""
    bodies: list[list[dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        bodies.append(body)
        rejected = len({e["index"] for e in errors})
        answer = {"status": "partial" if applied and rejected else "ok", "received": len(body)}
        answer |= {"applied": applied, "duplicates": duplicates, "stale": stale}
        answer |= {"rejected": rejected, "errors": errors, "servers": 3, "new_servers": 0}
        return httpx.Response(status, json=answer | {"warmup_progress": 100.0})

    handler.bodies = bodies  # type: ignore[attr-defined]
    return handler


def sender_for(handler: Any, batch: int = 10) -> FeedSender:
    client = httpx.Client(base_url="http://d", transport=httpx.MockTransport(handler))
    return FeedSender(client, batch, 1000, backoff_initial=1.0, backoff_max=8.0, clock=FakeClock())


def test_a_partial_answer_is_counted_and_rejected_records_are_never_resent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors = [
        {"index": 4, "field": "cpu_user_pct", "problem": "must be <= 100"},
        {"index": 4, "field": "mem_used_pct", "problem": "must be >= 0"},
    ]
    handler = counted(200, applied=7, duplicates=1, stale=1, errors=errors)
    sender = sender_for(handler)
    sender.enqueue([feed_record(f"ppweb00{i}", i) for i in range(10)])
    with caplog.at_level(logging.INFO):
        assert sender.flush() is True
        assert sender.flush() is True  # nothing left to resend
    assert len(handler.bodies) == 1
    stats = sender.stats
    assert (stats.forwarded, stats.applied, stats.duplicates) == (10, 7, 1)
    assert (stats.stale, stats.rejected, stats.failures) == (1, 1, 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "rejected 1 of 10 records (HTTP 200), not resent: record 4 "
        "(ppweb004 at 2025-03-05T12:04:00Z): cpu_user_pct: must be <= 100; record 4" in w
        for w in warnings
    ), warnings
    assert any("1 stale records" in w for w in warnings)
    assert "TFT_MAX_CLOCK_SKEW_S" not in caplog.text  # no timestamp was refused
    assert "Forwarded 10 records to TFT daemon: 7 applied, 1 duplicates, 1 stale, 1 rejected" in (
        caplog.text
    )


def test_a_422_with_counts_rejects_the_batch_and_hints_at_the_clock_skew_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors = [
        {"index": i, "field": "timestamp", "problem": "more than 300 s in the future"}
        for i in range(5)
    ]
    handler = counted(422, applied=0, duplicates=0, stale=0, errors=errors)
    sender = sender_for(handler)
    sender.enqueue([feed_record("ppdb001", i) for i in range(5)])
    assert sender.flush() is True
    assert sender.flush() is True
    assert len(handler.bodies) == 1  # never retried
    assert (sender.stats.forwarded, sender.stats.rejected, sender.stats.applied) == (5, 5, 0)
    assert sender.retry_in() == 0 and sender.stats.failures == 0
    assert "rejected 5 of 5 records (HTTP 422), not resent" in caplog.text
    assert "; and 2 more; " in caplog.text  # the first three errors are quoted
    assert "TFT_MAX_CLOCK_SKEW_S=0" in caplog.text


def test_a_422_for_an_unusable_body_rejects_every_record(caplog: pytest.LogCaptureFixture) -> None:
    def daemon(request: httpx.Request) -> httpx.Response:
        error = {"index": None, "field": "(body)", "problem": "invalid JSON"}
        body = {"status": "rejected", "received": 0, "applied": 0, "rejected": 0}
        return httpx.Response(422, json=body | {"errors": [error]})

    sender = sender_for(daemon)
    sender.enqueue(recs(0, 4))
    assert sender.flush() is True
    assert (sender.stats.forwarded, sender.stats.rejected, sender.stats.applied) == (4, 4, 0)
    assert "rejected 4 of 4 records (HTTP 422), not resent: the batch: (body): invalid JSON" in (
        caplog.text
    )


def test_an_answer_without_counts_counts_the_batch_as_applied() -> None:
    def old_daemon(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "ok", "received": 10})

    sender = sender_for(old_daemon)
    sender.enqueue(recs(0, 10))
    assert sender.flush() is True
    assert (sender.stats.forwarded, sender.stats.applied, sender.stats.rejected) == (10, 10, 0)


def test_health_and_the_stopped_line_report_the_counts(caplog: pytest.LogCaptureFixture) -> None:
    errors = [{"index": 0, "field": "state", "problem": "unknown state"}]
    sender = sender_for(counted(200, applied=2, duplicates=1, stale=0, errors=errors))
    sender.enqueue([feed_record("ppdb001", i) for i in range(4)])
    sender.flush()
    sender.enqueue([feed_record("ppdb001", 9)])
    sender.retry_now()
    status = feed_status(sender)
    assert status == {
        "produced": 5,
        "forwarded": 4,
        "applied": 2,
        "duplicates": 1,
        "stale": 0,
        "rejected": 1,
        "dropped": 0,
        "failures": 0,
        "buffered": 1,
    }
    with caplog.at_level(logging.INFO):
        _finish(sender)  # sends the last record (answered 2 applied, 1 duplicate, 1 rejected)
    assert (
        "Stopped: 5 records produced, 5 forwarded (4 applied, 2 duplicates, 0 stale, "
        "2 rejected by the daemon), 0 dropped (buffer full), 0 unsent" in caplog.text
    )


def test_a_connection_broken_under_a_request_is_resent_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = FakeDaemon([httpx.ReadError, 200, httpx.RemoteProtocolError])
    sender = make_sender(daemon)
    sender.enqueue(recs(0, 20))
    with caplog.at_level(logging.INFO):
        assert sender.flush() is True  # no backoff: each broken POST was sent again at once
    assert daemon.posts == [10, 10, 10, 10] and daemon.received == recs(0, 20)
    assert sender.stats.failures == 0 and "unavailable" not in caplog.text
    assert "resending at once" in caplog.text
    twice = FakeDaemon([httpx.ReadError, httpx.ReadError])  # really down: back off
    sender = make_sender(twice)
    sender.enqueue(recs(0, 5))
    assert sender.flush() is False and sender.retry_in() == 1.0
    assert twice.posts == [5, 5] and sender.stats.failures == 1


def test_the_client_drops_idle_connections_before_the_daemon_does() -> None:
    """uvicorn closes a connection idle for its keep-alive (default 5 s, TFT_KEEPALIVE_S);
    the generator, sending every 5 s, lets its own go after keepalive_s (default 2 s)."""
    assert make_settings().keepalive_s == 2.0
    with make_client(make_settings(keepalive_s=0.5)) as client:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert pool._keepalive_expiry == 0.5
    with pytest.raises(ValueError):
        make_settings(keepalive_s=-1)


def test_speed_above_one_warns_that_the_daemon_needs_no_clock_skew_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    warn_if_ahead(make_settings(speed=1))
    warn_if_ahead(make_settings(speed=0.5))
    assert caplog.text == ""
    warn_if_ahead(make_settings(speed=60))
    assert "TFT_MAX_CLOCK_SKEW_S=0" in caplog.text and "3540 s ahead after one minute" in (
        caplog.text
    )


@pytest.mark.parametrize(("code", "hint"), [(401, "set TFT_API_KEY"), (403, "does not match")])
def test_auth_errors_say_so_and_keep_the_records(
    code: int, hint: str, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = FakeDaemon([code])
    sender = make_sender(daemon)
    sender.enqueue(recs(0, 5))
    assert sender.flush() is False
    assert hint in caplog.text and KEY not in caplog.text
    assert sender.retry_in() == 8.0  # the longest backoff, not a tight loop
    sender.clock.t += 8
    assert sender.flush() is True and daemon.received == recs(0, 5)


def test_413_halves_the_batch_and_resends() -> None:
    daemon = FakeDaemon([413])
    sender = make_sender(daemon)
    sender.enqueue(recs(0, 10))
    assert sender.flush() is True
    assert daemon.posts == [10, 5, 5] and daemon.received == recs(0, 10)


def test_overflow_drops_the_oldest_counts_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    daemon = FakeDaemon([httpx.ConnectError])
    sender = make_sender(daemon, batch=10, bound=30)
    sender.enqueue(recs(0, 20))
    sender.flush()
    assert sender.enqueue(recs(20, 30)) == 20
    assert sender.stats.dropped == 20 and sender.pending == 30
    assert "dropped the 20 oldest unsent records" in caplog.text
    sender.clock.t += 1
    assert sender.flush() is True
    assert daemon.received == recs(20, 30)
    assert sender.stats.produced == 50


def test_warmup_progress_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "ok", "received": 1, "warmup_progress": 65.2})

    client = httpx.Client(base_url="http://d", transport=httpx.MockTransport(handler))
    sender = FeedSender(client, 10, 100)
    sender.enqueue(recs(0, 1))
    with caplog.at_level(logging.INFO):
        sender.flush()
    assert "Forwarded 1 records to TFT daemon (warmup 65.2%)" in caplog.text


# --- the simulator extensions and scenarios ------------------------------------------


def _sim(tick: int = 300, n: int = 20, seed: int = 5) -> FleetSimulator:
    sim = FleetSimulator(n, seed, tick, "2025-03-03T00:00:00Z")
    sim.advance(288)
    return sim


def _rows(frame: pd.DataFrame, server: str) -> pd.DataFrame:
    return frame[frame["server_name"] == server].reset_index(drop=True)


def _last_incident(sim: FleetSimulator, server: str) -> Incident:
    return [i for i in sim.incidents if i.server == server][-1]


def test_force_incident_hours_and_hold_then_release() -> None:
    sim = _sim()
    sim.force_incident("ppweb001", "load_ramp", hours=0.5, hold=True)
    frame = _rows(sim.advance(40), "ppweb001")
    assert (frame["state"].iloc[:5] != "critical_issue").all()
    assert (frame["state"].iloc[6:] == "critical_issue").all()  # critical at 30 min, held
    assert (100 - frame["cpu_idle_pct"].iloc[6:] > 95).all()
    assert _last_incident(sim, "ppweb001").end is None
    assert sim.release("ppweb001") is True
    after = _rows(sim.advance(30), "ppweb001")
    assert _last_incident(sim, "ppweb001").end == after["timestamp"].iloc[0]
    assert after["state"].iloc[2] != "critical_issue"
    assert (after["state"].iloc[-5:].isin(["healthy", "morning_spike", "idle"])).all()
    assert sim.release("ppweb001") is False  # nothing in progress


def test_release_mid_incident_recovers_without_a_jump() -> None:
    sim = _sim()
    sim.force_incident("ppml0001", "memory_leak", hours=4)
    mem = _rows(sim.advance(24), "ppml0001")["mem_used_pct"]
    sim.release("ppml0001")
    later = _rows(sim.advance(24), "ppml0001")["mem_used_pct"]
    # means of a few steps: memory is a level with noise of up to 4 points around it
    assert abs(later.iloc[:3].mean() - mem.iloc[-3:].mean()) < 6  # continues from there
    assert later.iloc[-6:].mean() < mem.iloc[-6:].mean() - 10


def test_unheld_servers_and_natural_incidents_unchanged() -> None:
    sim, twin = _sim(seed=9), _sim(seed=9)
    sim.force_incident("ppdb001", "iowait_storm", hours=0.5, hold=True)
    a, b = sim.advance(288), twin.advance(288)
    others = a["server_name"] != "ppdb001"
    pd.testing.assert_frame_equal(
        a[others].reset_index(drop=True), b[b["server_name"] != "ppdb001"].reset_index(drop=True)
    )


def test_defaults_and_dependents() -> None:
    servers = FleetSimulator(20).servers
    assert sc.default_servers("degrading", servers) == ["ppdb001", "ppml0001", "ppweb001"]
    assert sc.default_servers("cascade", servers) == ["ppdb001"]
    assert sc.default_servers("healthy", servers) == []
    deps = {db: sc.dependents(servers, db) for db in ("ppdb001", "ppdb002", "ppdb003")}
    assert deps["ppdb001"] == ["ppcon01", "ppweb003"]
    assert sorted(sum(deps.values(), [])) == sorted(
        s for s, p in servers.items() if p in ("web_api", "conductor")
    )
    with pytest.raises(ScenarioError, match="unknown server"):
        sc.check_servers("critical", ["nope001"], servers)
    with pytest.raises(ScenarioError, match="database"):
        sc.check_servers("cascade", ["ppweb001"], servers)
    with pytest.raises(ScenarioError, match="no servers|give no servers"):
        sc.check_servers("healthy", ["ppweb001"], servers)
    with pytest.raises(ScenarioError, match="has none"):
        sc.check_servers("cascade", [], FleetSimulator(2).servers)


CRITICAL_WITHIN = 7  # 5-minute steps from a switch to critical (30 min ramp + 1)
DEGRADED_WITHIN = 24  # 5-minute steps (2 h): a third of the way to a full memory or disk


def test_critical_switch_marks_and_degrades_only_the_chosen_servers() -> None:
    controller, twin = ScenarioController(_sim()), _sim()
    state = controller.switch("critical", ["ppweb002", "ppml0003"])
    assert state["affected"] == ["ppweb002", "ppml0003"] and state["scenario"] == "critical"
    frame, base = controller.advance(CRITICAL_WITHIN + 24), twin.advance(CRITICAL_WITHIN + 24)
    for server in ("ppweb002", "ppml0003"):
        states = _rows(frame, server)["state"]
        assert (states.iloc[CRITICAL_WITHIN - 1 :] == "critical_issue").all(), server
    untouched = ~frame["server_name"].isin(["ppweb002", "ppml0003"])
    expected = base[~base["server_name"].isin(["ppweb002", "ppml0003"])]
    pd.testing.assert_frame_equal(
        frame[untouched].reset_index(drop=True), expected.reset_index(drop=True)
    )
    # back to healthy: released at once, recovering within two steps
    state = controller.switch("healthy")
    assert state["affected"] == [] and state["pending"] == []
    after = controller.advance(24)
    for server in ("ppweb002", "ppml0003"):
        assert (_rows(after, server)["state"].iloc[2:] != "critical_issue").all()


def test_degrading_rises_within_the_stated_steps() -> None:
    controller, twin = ScenarioController(_sim()), _sim()
    state = controller.switch("degrading")
    assert state["affected"] == ["ppdb001", "ppml0001", "ppweb001"]
    frame, base = controller.advance(DEGRADED_WITHIN), twin.advance(DEGRADED_WITHIN)
    for server, metric in [("ppdb001", "disk_usage_pct"), ("ppml0001", "mem_used_pct")]:
        normal = _rows(base, server)[metric].iloc[-1]
        rise = _rows(frame, server)[metric].iloc[-1] - normal
        assert rise >= 0.3 * (98 - normal) and rise >= 5, (server, rise)
    chosen = frame[frame["server_name"].isin(state["affected"])]
    assert not (chosen["state"] == "critical_issue").any()  # slow: not critical yet


def test_cascade_database_first_then_its_dependents() -> None:
    controller = ScenarioController(_sim())
    state = controller.switch("cascade")
    assert state["servers"] == ["ppdb001"]
    assert state["affected"] == ["ppdb001", "ppcon01", "ppweb003"]
    assert [p["server"] for p in state["pending"]] == ["ppcon01", "ppweb003"]
    delay = round(sc.CASCADE_DELAY_HOURS * 12)
    frame = controller.advance(delay + CRITICAL_WITHIN + 6)
    db = _rows(frame, "ppdb001")["state"]
    assert (db.iloc[CRITICAL_WITHIN - 1 :] == "critical_issue").all()
    for server in ("ppcon01", "ppweb003"):
        states = _rows(frame, server)["state"]
        assert (states.iloc[: delay + 3] != "critical_issue").all(), server
        assert (states.iloc[delay + CRITICAL_WITHIN - 1 :] == "critical_issue").all(), server
    assert controller.state()["pending"] == []


def test_controller_output_does_not_depend_on_chunking() -> None:
    whole, pieces = ScenarioController(_sim()), ScenarioController(_sim())
    whole.switch("cascade")
    pieces.switch("cascade")
    a = whole.advance(20)
    b = pd.concat([pieces.advance(k) for k in (1, 4, 0, 2, 13)], ignore_index=True)
    key = ["server_name", "timestamp"]
    pd.testing.assert_frame_equal(
        a.sort_values(key, ignore_index=True), b.sort_values(key, ignore_index=True)
    )


# --- the control API -----------------------------------------------------------------


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://control") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


@pytest.fixture
def control() -> tuple[Any, ScenarioController]:
    controller = ScenarioController(FleetSimulator(20, 1, 300, "2025-03-05T00:00:00Z"))
    app = create_control_app(make_settings(), controller, lambda: {"buffered": 3})
    return app, controller


def test_control_auth(control: tuple[Any, ScenarioController]) -> None:
    app, _ = control
    health = call(app, "GET", "/health")
    assert health.status_code == 200
    assert health.json()["scenario"] == "healthy" and health.json()["feed"] == {"buffered": 3}
    assert call(app, "GET", "/scenario").status_code == 401
    assert call(app, "GET", "/scenario", headers={"X-API-Key": "wrong"}).status_code == 403
    body = {"scenario": "critical"}
    assert call(app, "POST", "/scenario", json=body).status_code == 401
    assert call(app, "POST", "/scenario", json=body, headers={"X-API-Key": "x"}).status_code == 403
    assert call(app, "GET", "/scenario", headers={"X-API-Key": KEY}).status_code == 200


def test_control_switch_and_validation(control: tuple[Any, ScenarioController]) -> None:
    app, controller = control
    auth = {"X-API-Key": KEY}
    bad = call(app, "POST", "/scenario", json={"scenario": "meteor"}, headers=auth)
    assert bad.status_code == 422
    unknown = {"scenario": "critical", "servers": ["ppweb001", "nope001"]}
    response = call(app, "POST", "/scenario", json=unknown, headers=auth)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"field": "servers", "problem": "unknown server(s): nope001"}
    ]
    wrong = call(
        app,
        "POST",
        "/scenario",
        json={"scenario": "cascade", "servers": ["ppweb001"]},
        headers=auth,
    )
    assert wrong.status_code == 422 and "database" in wrong.text
    assert controller.state()["scenario"] == "healthy"  # refused requests changed nothing
    ok = call(
        app,
        "POST",
        "/scenario",
        json={"scenario": "critical", "servers": ["ppweb001"]},
        headers=auth,
    )
    assert ok.status_code == 200 and ok.json()["affected"] == ["ppweb001"]
    state = call(app, "GET", "/scenario", headers=auth).json()
    assert (state["scenario"], state["servers"]) == ("critical", ["ppweb001"])
    assert math.isclose(
        pd.Timestamp(state["since"]).value, controller.sim.now.value
    )  # starts at the next step


def test_control_reads_json_whatever_the_content_type(
    control: tuple[Any, ScenarioController],
) -> None:
    """curl -d sends application/x-www-form-urlencoded; the body is JSON all the same."""
    app, controller = control
    form = {"X-API-Key": KEY, "Content-Type": "application/x-www-form-urlencoded"}
    ok = call(app, "POST", "/scenario", content=b'{"scenario": "cascade"}', headers=form)
    assert ok.status_code == 200, ok.text
    assert controller.state()["scenario"] == "cascade"
    none = call(
        app, "POST", "/scenario", content=b'{"scenario": "healthy"}', headers={"X-API-Key": KEY}
    )
    assert none.status_code == 200 and controller.state()["scenario"] == "healthy"


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (b'{"scenario": ', "(body)", "Invalid JSON"),
        (b"", "(body)", "Invalid JSON"),
        (b'{"scenario": "meteor"}', "scenario", "Input should be 'healthy'"),
        (b'{"servers": ["ppdb001"]}', "scenario", "Field required"),
        (b'{"scenario": "critical", "servers": "ppdb001"}', "servers", "valid array"),
        (b'{"scenario": "critical", "sevrers": []}', "sevrers", "Extra inputs"),
    ],
)
def test_control_422_names_the_field(
    control: tuple[Any, ScenarioController], body: bytes, field: str, problem: str
) -> None:
    app, controller = control
    headers = {"X-API-Key": KEY, "Content-Type": "application/x-www-form-urlencoded"}
    response = call(app, "POST", "/scenario", content=body, headers=headers)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["field"] == field and problem in error["problem"], error
    assert controller.state()["scenario"] == "healthy"
    assert call(app, "POST", "/scenario", content=body).status_code == 401  # key first


def test_control_insecure_no_auth() -> None:
    controller = ScenarioController(FleetSimulator(7, 1, 300))
    settings = Settings(_env_file=None, api_key=None, insecure_no_auth=True, control_port=0)
    app = create_control_app(settings, controller)
    assert call(app, "GET", "/scenario").status_code == 200
    assert "feed" not in call(app, "GET", "/health").json()


WARNING_WITHIN = 60  # 5-minute steps (5 h of the 6 h build-up) for "degrading" to warn


def _risk(frame: pd.DataFrame, server: str, profile: str) -> list[int]:
    """risk.assess per step on current values, with a flat forecast (the current values
    repeated): a lower bound on what the daemon reports, whose forecast can only add."""
    current = _rows(frame, server)[list(dc.METRIC_COLUMNS)].to_numpy(np.float64)
    flat = np.repeat(np.repeat(current[:, None, :, None], 96, axis=1), 3, axis=3)
    return [a.score for a in risk.assess(current, flat, PROFILE_BY_NAME[profile].cores)]


@pytest.mark.parametrize(
    ("scenario", "within", "score"),
    [
        ("critical", CRITICAL_WITHIN, 70),
        ("cascade", CRITICAL_WITHIN, 70),
        ("degrading", WARNING_WITHIN, 50),
    ],
)
def test_a_switch_raises_the_affected_servers_risk_within_the_stated_steps(
    scenario: str, within: int, score: int
) -> None:
    controller, twin = ScenarioController(_sim()), _sim()
    state = controller.switch(scenario)
    frame, base = controller.advance(72), twin.advance(72)
    servers = controller.sim.servers
    delay = round(sc.CASCADE_DELAY_HOURS * 12)
    for server in state["affected"]:
        late = delay if server in [p["server"] for p in state["pending"]] else 0
        risk = _risk(frame, server, servers[server])
        assert max(risk[: late + within]) >= score, (server, risk[: late + within])
        assert max(_risk(base, server, servers[server])[: late + within]) < 50, server


def test_streaming_status_line_sums_up_the_quiet_posts(caplog: pytest.LogCaptureFixture) -> None:
    from simfeed.runner import STATUS_EVERY_S, StatusLine

    now = [0.0]
    sender = FeedSender(httpx.Client(), batch_size=10, max_records=100, clock=lambda: now[0])
    status = StatusLine(sender, lambda: now[0])
    sender.count(FeedAnswer(applied=7, duplicates=1), 8)
    with caplog.at_level(logging.INFO, logger="simfeed.runner"):
        status.maybe_log()
        assert "Streaming" not in caplog.text
        now[0] = STATUS_EVERY_S
        status.maybe_log()
    assert "Streaming: 8 records forwarded in 60 s (7 applied, 1 duplicates" in caplog.text
