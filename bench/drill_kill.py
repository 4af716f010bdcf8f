"""kill -9 drill: the daemon is killed at random moments while a producer streams to it.

    python -m bench.drill_kill [--reps 20] [--servers 20] [--rate 20] [--seed 0] [--json]

The daemon (tft_inference_daemon.py, the real model, a state directory) runs as a real
process; a separate producer process streams through simfeed.sender.FeedSender (the
generator's sender: bounded buffer, retries, idempotent resends): a day of 5-minute
history (backfill), then a tick per server every 5 s of timestamp, --rate ticks per
wall second (ahead of the clock: the daemon runs with TFT_MAX_CLOCK_SKEW_S=0). Each
repetition kills the daemon with SIGKILL after a random 1-6 s of serving (in a share of
them once more during its startup: restore and log replay) and restarts it on the same
port and state directory; the sender's retries carry on. At the end the producer drains
its buffer, the daemon stops gracefully (SIGTERM saves daemon_state.npz) and the state
file is counted by server and 5-minute step against what was produced, over each
server's newest `ring` steps: lost = expected - held where positive, duplicated = held -
expected where positive. Then it starts once more: /predict must show every server ready
at once (no new warmup) and forecast_status "ok".

Goals: 0 lost, 0 duplicated, forecasts right after the restart.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.drills import (
    FAST_CLOCK_ENV,
    Daemon,
    FeedPlan,
    Producer,
    as_dict,
    forecast_statuses,
    percentile,
    plan_start,
)
from data_contract import STEP_SECONDS

BACKFILL_STEPS = 288  # a day of history; older records would be stale (the 24 h window)
STATE_FILE = "daemon_state.npz"


# --- counting -----------------------------------------------------------------------------


def expected_counts(plan: FeedPlan, ticks: int) -> dict[int, int]:
    """Records produced per 5-minute step (every server alike): distinct timestamps."""
    counts = {plan.start // STEP_SECONDS + k: 1 for k in range(plan.backfill_steps)}
    for j in range(ticks):
        step = (plan.tick_start + plan.tick_s * j) // STEP_SECONDS
        counts[step] = counts.get(step, 0) + 1
    return counts


def held_counts(state_dir: Path) -> tuple[dict[str, dict[int, int]], int]:
    """Ticks held per server and step in the saved state (its newest `ring` steps: slot
    step % ring), and the ring size."""
    with np.load(state_dir / STATE_FILE, allow_pickle=False) as data:
        names = [str(n) for n in data["names"]]
        count, head = data["buf_count"], data["buf_head"]
    ring = count.shape[1]
    held: dict[str, dict[int, int]] = {}
    for i, name in enumerate(names):
        steps = range(int(head[i]) - ring + 1, int(head[i]) + 1) if head[i] >= 0 else ()
        held[name] = {s: int(count[i, s % ring]) for s in steps if count[i, s % ring]}
    return held, ring


def compare(plan: FeedPlan, ticks: int, state_dir: Path) -> dict[str, Any]:
    """Lost and duplicated records over each server's newest `ring` produced steps."""
    expected = expected_counts(plan, ticks)
    held, ring = held_counts(state_dir)
    window = range(max(expected) - ring + 1, max(expected) + 1)
    out = dict.fromkeys(("expected_records", "held_records", "lost", "duplicated"), 0)
    damaged = set()
    for name in plan.names():
        mine = held.get(name, {})
        for step in window:
            e, h = expected.get(step, 0), mine.get(step, 0)
            out["expected_records"] += e
            out["held_records"] += h
            out["lost"] += max(e - h, 0)
            out["duplicated"] += max(h - e, 0)
            if e != h:
                damaged.add(name)
    out["servers_damaged"] = len(damaged)
    out["servers_missing"] = sum(1 for name in plan.names() if name not in held)
    return {"checked_steps": ring, **out}


# --- the drill ----------------------------------------------------------------------------


def kill_repeatedly(
    daemon: Daemon, reps: int, up: tuple[float, float], early_share: float, rng: random.Random
) -> dict[str, Any]:
    """reps kills while serving (and some during startup), each followed by a restart."""
    restarts, early = [], 0
    for _ in range(reps):
        time.sleep(rng.uniform(*up))
        daemon.kill()
        if rng.random() < early_share:
            daemon.spawn()
            time.sleep(rng.uniform(0.2, 4.0))  # restore and replay take about 1-6 s here
            daemon.kill()
            early += 1
        restarts.append(daemon.start())
    return {
        "kills": reps + early,
        "kills_during_startup": early,
        "restart_s_p50": round(percentile(restarts, 50) or 0, 2),
        "restart_s_max": round(max(restarts, default=0), 2),
    }


def warm_restart(daemon: Daemon, servers: int, timeout: float = 120) -> dict[str, Any]:
    """Start again after the graceful stop: ready at once? Seconds from the first answer
    to /health until every forecast is ok."""
    daemon.start()
    began = time.monotonic()
    first = forecast_statuses(daemon.url)
    ok_after = None
    while time.monotonic() - began < timeout:
        statuses = forecast_statuses(daemon.url)
        if statuses["ok"] == servers:
            ok_after = round(time.monotonic() - began, 1)
            break
        time.sleep(0.5)
    daemon.stop()
    return {
        "ready_at_first_predict": first.get("ready", 0),
        "ok_at_first_predict": first["ok"],
        "all_ok_after_s": ok_after,
    }


def run_drill(
    workdir: Path,
    reps: int = 20,
    servers: int = 20,
    rate: float = 20.0,
    up: tuple[float, float] = (1.0, 6.0),
    early_share: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """The whole drill in workdir (state/, daemon.log, producer.log); its results."""
    rng = random.Random(seed)
    daemon = Daemon(workdir / "state", workdir / "daemon.log", **FAST_CLOCK_ENV)
    daemon.start()
    plan = FeedPlan(
        daemon.url,
        servers,
        plan_start(BACKFILL_STEPS),
        BACKFILL_STEPS,
        interval_s=1 / rate,
        log=str(workdir / "producer.log"),
    )
    producer = Producer(plan)
    producer.start()
    try:
        kills = kill_repeatedly(daemon, reps, up, early_share, rng)
        produced = producer.finish()
        exit_code = daemon.stop()
    finally:
        producer.close()
        daemon.kill()
    counts = compare(plan, produced["ticks"], daemon.state_dir)
    restart = warm_restart(daemon, servers)
    log = daemon.log.read_text(errors="replace")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "reps": reps,
        "plan": as_dict(plan),
        **kills,
        "producer": produced,
        "graceful_exit_code": exit_code,
        **counts,
        **restart,
        "tracebacks_in_log": log.count("Traceback"),
        "goal_no_loss": counts["lost"] == 0 and counts["duplicated"] == 0,
        "goal_warm_restart": restart["ready_at_first_predict"] == servers
        and restart["all_ok_after_s"] is not None,
    }


def summary(r: dict[str, Any]) -> str:
    return (
        f"kill -9 drill ({r['date']}): {r['reps']} reps, {r['kills']} kills "
        f"({r['kills_during_startup']} during startup), {r['plan']['servers']} servers, "
        f"{r['producer']['sender_produced']:,} records produced "
        f"({r['producer']['sender_dropped']} dropped, {r['producer']['pending']} unsent); "
        f"checked {r['expected_records']:,} records over {r['checked_steps']} steps: "
        f"held {r['held_records']:,}, lost {r['lost']:,}, duplicated {r['duplicated']:,} "
        f"({r['servers_damaged']} servers damaged); restart p50 {r['restart_s_p50']} s, "
        f"max {r['restart_s_max']} s; final restart: {r['ready_at_first_predict']} ready at "
        f"once, all forecasts ok after {r['all_ok_after_s']} s; "
        f"goals: no loss {'MET' if r['goal_no_loss'] else 'NOT MET'}, "
        f"warm restart {'MET' if r['goal_warm_restart'] else 'NOT MET'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0, help="ticks per wall second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--early-share", type=float, default=0.2)
    parser.add_argument("--workdir", type=Path, help="keep the state and logs here")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = run_drill(
            workdir,
            args.reps,
            args.servers,
            args.rate,
            early_share=args.early_share,
            seed=args.seed,
        )
    print(summary(result))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0 if result["goal_no_loss"] and result["goal_warm_restart"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
