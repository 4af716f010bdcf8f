"""Shared parts of the drills (bench/drill_kill.py, bench/soak.py, tests/test_drills.py).

- Daemon: tft_inference_daemon.py as a real process (tests/daemon_helpers.start_daemon:
  the real model, a state directory), started, killed and stopped by its own pid.
- The producer: a separate process that streams a fleet's records to /feed through
  simfeed.sender.FeedSender, the generator's real sender (bounded buffer, retries with
  backoff, idempotent resends): a backfill of 5-minute steps, then 5-second ticks.
- Sampling: a process's RSS, threads and open files from /proc.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from data_contract import STEP_SECONDS
from simfeed.sender import FeedSender
from tests.daemon_helpers import AUTH, free_port, start_daemon

logger = logging.getLogger(__name__)

# The producer runs faster than the wall clock: timestamps ahead of it are accepted.
FAST_CLOCK_ENV = {"TFT_MAX_CLOCK_SKEW_S": "0"}


# --- the daemon as a process --------------------------------------------------------


class Daemon:
    """One daemon port and state directory; each start() is a new process on them."""

    def __init__(self, state_dir: Path, log: Path, **env: str) -> None:
        self.state_dir, self.log, self.env = state_dir, log, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 120) -> float:
        """Start and wait until /health answers; returns the seconds it took."""
        began = time.monotonic()
        self.spawn()
        self.wait_healthy(timeout)
        return time.monotonic() - began

    def spawn(self) -> None:
        self.process = start_daemon(self.port, self.state_dir, self.log, **self.env)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"daemon exited ({self.process.returncode}):\n{self.tail()}")
            if self.healthy():
                return
            time.sleep(0.1)
        raise RuntimeError(f"daemon not healthy after {timeout} s:\n{self.tail()}")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """kill -9, as a crash or the OOM killer would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM: a graceful stop (the daemon saves its state); returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


# --- the producer process -----------------------------------------------------------


@dataclass(frozen=True)
class FeedPlan:
    """What the producer sends: `servers` servers, one record per 5-minute step from
    `start` for `backfill_steps` steps, then a tick every `tick_s` seconds of timestamp,
    one every `interval_s` wall seconds (at most `max_ticks`; None: until stopped)."""

    url: str
    servers: int
    start: int
    backfill_steps: int
    interval_s: float
    max_ticks: int | None = None
    tick_s: int = 5
    batch_size: int = 2_000
    buffer_records: int = 2_000_000
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 1.0
    log: str | None = None  # the producer's log file (the sender's lines); None: errors only

    @property
    def tick_start(self) -> int:
        return self.start + STEP_SECONDS * self.backfill_steps

    def names(self) -> list[str]:
        return [f"drill{i:05d}" for i in range(self.servers)]


def plan_start(backfill_steps: int, now: float | None = None) -> int:
    """A step boundary backfill_steps steps before now: the ticks start about now."""
    now = time.time() if now is None else now
    return int(now) // STEP_SECONDS * STEP_SECONDS - STEP_SECONDS * backfill_steps


def records_at(names: list[str], seconds: int) -> list[dict[str, Any]]:
    """A valid record per server at epoch seconds: a daily cycle, phase-shifted per server."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    day = 2 * math.pi * (seconds % 86_400) / 86_400
    out = []
    for i, name in enumerate(names):
        user = round(30 + 15 * math.sin(day + i), 2)
        sys_, wait = 5.0, 1.0
        out.append(
            {
                "timestamp": stamp,
                "server_name": name,
                "state": "healthy",
                "cpu_user_pct": user,
                "cpu_sys_pct": sys_,
                "cpu_iowait_pct": wait,
                "cpu_idle_pct": round(100 - user - sys_ - wait, 2),
                "java_cpu_pct": round(user / 2, 2),
                "mem_used_pct": round(50 + 10 * math.sin(day + 2 * i), 2),
                "swap_used_pct": 0.0,
                "disk_usage_pct": 40.0 + i % 30,
                "net_in_mb_s": round(10 + 5 * math.cos(day + i), 2),
                "net_out_mb_s": round(8 + 4 * math.cos(day + i), 2),
                "back_close_wait": i % 5,
                "front_close_wait": i % 3,
                "load_average": round(user / 10, 2),
                "uptime_days": 30 + i % 100,
            }
        )
    return out


def produce(plan: FeedPlan, stop: Any, backfilled: Any, results: Any) -> None:
    """The producer process: backfill, then ticks on schedule until stopped (or max_ticks),
    then drain the sender's buffer (up to 120 s) and put its counts on results."""
    _log_to(plan.log)
    limits = httpx.Limits(keepalive_expiry=5)  # below the daemon's keep-alive (15 s)
    with httpx.Client(base_url=plan.url, headers=AUTH, timeout=30, limits=limits) as client:
        sender = FeedSender(
            client,
            plan.batch_size,
            plan.buffer_records,
            plan.backoff_initial_s,
            plan.backoff_max_s,
        )
        _backfill(plan, sender)
        backfilled.set()
        ticks, stream_s = _stream(plan, sender, stop)
        deadline = time.monotonic() + 120
        while sender.pending and time.monotonic() < deadline:
            if not sender.flush():
                time.sleep(min(max(sender.retry_in(), 0.01), 0.5))
    results.put(
        {
            "ticks": ticks,
            "stream_s": round(stream_s, 1),
            "pending": sender.pending,
            **{f"sender_{k}": v for k, v in sender.stats.as_dict().items()},
        }
    )


def _log_to(path: str | None) -> None:
    if path is None:
        logging.basicConfig(level=logging.ERROR)
        return
    form = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(filename=path, level=logging.INFO, format=form)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _backfill(plan: FeedPlan, sender: FeedSender) -> None:
    names, room = plan.names(), plan.buffer_records // 2
    for k in range(plan.backfill_steps):
        sender.enqueue(records_at(names, plan.start + STEP_SECONDS * k))
        sender.flush(full_only=True)
        while sender.pending > room:  # the daemon is down: wait rather than drop
            if not sender.flush():
                time.sleep(min(max(sender.retry_in(), 0.01), 0.5))
    while not sender.flush():
        time.sleep(min(max(sender.retry_in(), 0.01), 0.5))


def _stream(plan: FeedPlan, sender: FeedSender, stop: Any) -> tuple[int, float]:
    """Ticks on schedule (catching up a bounded number per loop when late); returns the
    ticks produced and the wall seconds it took."""
    names, ticks, began = plan.names(), 0, time.monotonic()
    while not stop.is_set() and (plan.max_ticks is None or ticks < plan.max_ticks):
        due = int((time.monotonic() - began) / plan.interval_s) + 1
        if plan.max_ticks is not None:
            due = min(due, plan.max_ticks)
        for _ in range(min(due - ticks, 50)):
            sender.enqueue(records_at(names, plan.tick_start + plan.tick_s * ticks))
            ticks += 1
        sender.flush()
        if ticks >= due:
            stop.wait(min(max(began + ticks * plan.interval_s - time.monotonic(), 0.0), 0.5))
    return ticks, time.monotonic() - began


class Producer:
    """The producer process (spawned: a clean interpreter, no inherited sockets)."""

    def __init__(self, plan: FeedPlan) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.plan = plan
        self.stop_event, self.backfilled = ctx.Event(), ctx.Event()
        self.results = ctx.Queue()
        self.process = ctx.Process(
            target=produce,
            args=(plan, self.stop_event, self.backfilled, self.results),
            daemon=True,
        )

    def start(self) -> None:
        self.process.start()

    def finish(self, timeout: float = 300) -> dict[str, Any]:
        """Stop producing, let the buffer drain; the producer's counts."""
        self.stop_event.set()
        result = self.results.get(timeout=timeout)
        self.process.join(timeout=30)
        return result

    def close(self) -> None:
        """Make sure the process is gone (after finish(), or after a failure)."""
        self.stop_event.set()
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=30)


# --- /predict and /proc ------------------------------------------------------------------


def forecast_statuses(url: str, timeout: float = 60) -> dict[str, Any]:
    """/predict's fleet summary and how many servers have forecast_status ok."""
    body = httpx.get(f"{url}/predict", headers=AUTH, timeout=timeout).json()
    statuses = [entry.get("forecast_status") for entry in body["predictions"].values()]
    return {**body.get("fleet", {}), "ok": statuses.count("ok"), "listed": len(statuses)}


def proc_sample(pid: int) -> dict[str, int]:
    """RSS (KiB), threads and open file descriptors of a live process (Linux /proc)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return {"rss_kib": fields["VmRSS"], "threads": fields["Threads"], "fds": fds}


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def as_dict(plan: FeedPlan) -> dict[str, Any]:
    return {k: v for k, v in asdict(plan).items() if k != "url"}
