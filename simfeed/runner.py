"""The daemon's life: backfill history, then stream ticks, with the control API alongside.

One simulator, one clock: the fleet starts backfill_hours before "now" (floored to a
5-minute boundary) at the tick length of timing.tick_seconds and runs continuously from
there. Backfill ticks are aggregated into one record per server per 5-minute step (what
the daemon would have built from the stream) and sent in batches; streaming sends every
raw tick. The scenario from the settings starts when streaming starts.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pandas as pd
import uvicorn

from durable import write_atomically
from fleet.profiles import PROFILE_BY_NAME, fleet_servers
from fleet.simulator import FleetSimulator
from simfeed.control import create_control_app
from simfeed.records import aggregate_steps, time_major, to_records
from simfeed.scenarios import ScenarioController, check_servers, default_servers
from simfeed.sender import FeedSender
from simfeed.settings import Settings
from simfeed.sinks import open_sink
from simfeed.timing import STEP_SECONDS, StreamClock, backfill_window, next_wake, tick_seconds

logger = logging.getLogger(__name__)

STATUS_EVERY_S = 60.0
BACKFILL_ROWS = 200_000  # simulated rows per backfill chunk (bounds memory at 1 s ticks)


def build_controller(
    settings: Settings, now: pd.Timestamp
) -> tuple[ScenarioController, pd.Timestamp]:
    """The live fleet, starting backfill_hours before now; returns (controller, backfill end)."""
    tick = tick_seconds(settings.interval, settings.speed)
    start, end = backfill_window(now, settings.backfill_hours)
    sim = FleetSimulator(settings.servers, settings.seed, tick, start)
    chosen = settings.scenario_servers or default_servers(settings.scenario, sim.servers)
    check_servers(settings.scenario, chosen, sim.servers)
    return ScenarioController(sim), end


def backfill(
    controller: ScenarioController, sender: FeedSender, end: pd.Timestamp, stop: threading.Event
) -> int:
    """Simulate up to end, send one record per server per 5-minute step; returns records.

    Chunks hold at most one batch of records (and BACKFILL_ROWS simulated rows); the
    backfill pauses while the daemon is unreachable rather than overflow the buffer.
    """
    sim, began, n = controller.sim, time.monotonic(), len(controller.sim.servers)
    per_step = STEP_SECONDS // sim.step_seconds  # ticks per 5-minute step
    chunk = per_step * max(1, min(BACKFILL_ROWS // (per_step * n), sender.batch_size // n))
    total = int((end - sim.now) / pd.Timedelta(seconds=sim.step_seconds))
    logger.info("Backfill %s to %s: %d ticks of %d s", sim.now, end, total, sim.step_seconds)
    sent = 0
    while sim.now < end and not stop.is_set():
        frame = controller.advance(min(chunk, total - sim.step))
        records = to_records(aggregate_steps(frame, sim.step_seconds))
        sender.enqueue(records)
        sent += len(records)
        sender.flush(full_only=True)
        _wait_for_room(sender, len(records), stop)
    sender.flush()
    done = "done" if sim.now >= end else "interrupted"
    logger.info("Backfill %s: %d records in %.1f s", done, sent, time.monotonic() - began)
    return sent


def _wait_for_room(sender: FeedSender, room: int, stop: threading.Event) -> None:
    limit, warned = max(sender.max_records - room, 0), False
    while sender.pending > limit and not stop.is_set():
        if not warned:
            logger.warning("Backfill paused until the TFT daemon takes %d records", sender.pending)
            warned = True
        stop.wait(max(sender.retry_in(), 0.05))
        sender.flush()


def stream(
    controller: ScenarioController,
    sender: FeedSender,
    settings: Settings,
    stop: threading.Event,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Every interval, send the ticks whose simulated time has come, until stop is set."""
    sim = controller.sim
    sclock = StreamClock(time.time(), clock(), settings.speed, sim.step_seconds)
    most = max(1, settings.batch_size // len(sim.servers))  # ticks per loop when catching up
    logger.info(
        "Streaming %d servers every %g s, %d s ticks, speed %gx",
        len(sim.servers),
        settings.interval,
        sim.step_seconds,
        settings.speed,
    )
    sender.quiet, status = True, StatusLine(sender, clock)
    while not stop.is_set():
        due = sclock.steps_due(sim.now, clock())
        if due:
            sender.enqueue(to_records(time_major(controller.advance(min(due, most)))))
        sender.flush()
        status.maybe_log()
        if due <= most:
            stop.wait(next_wake(sclock.mono_start, settings.interval, clock()))


class StatusLine:
    """One info line every STATUS_EVERY_S while streaming, instead of one per POST."""

    def __init__(self, sender: FeedSender, clock: Callable[[], float]) -> None:
        self.sender, self.clock = sender, clock
        self.last, self.counts = clock(), sender.stats.as_dict()

    def maybe_log(self) -> None:
        if self.clock() - self.last < STATUS_EVERY_S:
            return
        now, counts = self.sender.stats.as_dict(), self.counts
        d = {k: now[k] - counts[k] for k in now}
        logger.info(
            "Streaming: %d records forwarded in %.0f s (%d applied, %d duplicates, %d stale, "
            "%d rejected), %d dropped, %d buffered",
            d["forwarded"],
            self.clock() - self.last,
            d["applied"],
            d["duplicates"],
            d["stale"],
            d["rejected"],
            d["dropped"],
            self.sender.pending,
        )
        self.last, self.counts = self.clock(), now


class ControlServer:
    """The control API served by uvicorn in a thread, on a socket bound up front (so a busy
    port fails at start, in the main thread); it serves from start() on."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        logger.info("Control API on http://%s:%d", *self.sock.getsockname()[:2])

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.ident is not None:  # started
            self.thread.join(timeout=5)
        self.sock.close()


def make_client(settings: Settings) -> httpx.Client:
    """HTTP client for the daemon, with the X-API-Key header when a key is set.

    Idle connections expire after settings.keepalive_s, shorter than the daemon's
    keep-alive, so the client never reuses a connection the daemon is closing."""
    key = settings.key()
    headers = {"X-API-Key": key} if key else {}
    return httpx.Client(
        base_url=settings.daemon_url,
        headers=headers,
        timeout=settings.request_timeout_s,
        limits=httpx.Limits(keepalive_expiry=settings.keepalive_s),
    )


def warn_if_ahead(settings: Settings) -> None:
    """Above speed 1 simulated time runs ahead of the wall clock, and the daemon refuses
    timestamps more than TFT_MAX_CLOCK_SKEW_S ahead of its clock: say so at start."""
    if settings.speed <= 1:
        return
    logger.warning(
        "--speed %g: timestamps run ahead of the wall clock (%.0f s ahead after one minute); "
        "start the TFT daemon with TFT_MAX_CLOCK_SKEW_S=0 or it rejects them once they are "
        "more than its limit (default 300 s) ahead",
        settings.speed,
        60 * (settings.speed - 1),
    )


def run(settings: Settings, stop: threading.Event) -> int:
    """Backfill, then stream until stop is set; returns the exit status."""
    controller, end = build_controller(settings, pd.Timestamp.now("UTC"))
    logger.info(
        "Metrics generator daemon: %d servers (seed %d) -> %s",
        settings.servers,
        settings.seed,
        settings.to_mongodb or settings.to_elasticsearch or settings.daemon_url,
    )
    warn_if_ahead(settings)
    with make_client(settings) as client:
        sender = open_sink(settings) or FeedSender(
            client,
            settings.batch_size,
            settings.buffer_records,
            settings.backoff_initial_s,
            settings.backoff_max_s,
        )
        control = _control(settings, controller, sender)  # binds now: a busy port fails fast
        try:
            backfill(controller, sender, end, stop)
            if not stop.is_set():
                controller.switch(settings.scenario, settings.scenario_servers or None)
                if control is not None:
                    control.start()  # scenarios switch the live fleet, never the history
                stream(controller, sender, settings, stop)
        finally:
            _finish(sender)
            sender.close()
            if control is not None:
                control.stop()
    return 0


def _control(
    settings: Settings, controller: ScenarioController, sender: FeedSender
) -> ControlServer | None:
    if settings.control_port == 0:
        logger.info("Control API disabled (control port 0)")
        return None

    app = create_control_app(settings, controller, lambda: feed_status(sender))
    return ControlServer(app, settings.control_host, settings.control_port)


def feed_status(sender: FeedSender) -> dict[str, int]:
    """The sender's counts and its buffer, for the control API's /health."""
    return sender.stats.as_dict() | {"buffered": sender.pending}


def _finish(sender: FeedSender) -> None:
    """One last attempt at the buffer, then the counts."""
    sender.retry_now()
    sender.flush()
    s = sender.stats
    logger.info(
        "Stopped: %d records produced, %d forwarded (%d applied, %d duplicates, %d stale, "
        "%d rejected by the daemon), %d dropped (buffer full), %d unsent",
        s.produced,
        s.forwarded,
        s.applied,
        s.duplicates,
        s.stale,
        s.rejected,
        s.dropped,
        sender.pending,
    )


def fleet_cores(n_servers: int) -> dict[str, int]:
    """Each simulated server's core count (its profile's); names do not depend on the seed."""
    return {name: PROFILE_BY_NAME[p].cores for name, p in fleet_servers(n_servers).items()}


def write_cores_file(path: str | os.PathLike[str], n_servers: int) -> None:
    """Write {server: cores} as JSON (durably), for the daemon's TFT_SERVER_CORES_FILE."""
    write_atomically(path, json.dumps(fleet_cores(n_servers), indent=2) + "\n")
