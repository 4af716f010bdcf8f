"""Soak: the daemon under a steady fleet for a (simulated) hour; does anything grow?

    python -m bench.soak [--servers 1000] [--minutes 60] [--speed 6] [--sample-s 10] [--json]

The daemon (tft_inference_daemon.py, the real model) runs as a real process; a separate
producer process (simfeed.sender.FeedSender) backfills a day of 5-minute history, then
sends a tick per server every 5 s of timestamp for --minutes, --speed times faster than
the clock (--speed 6: the hour's 720 ticks in 10 minutes of wall time; the daemon runs
with TFT_MAX_CLOCK_SKEW_S=0). Every --sample-s seconds of streaming: the daemon's RSS,
threads and open files (/proc/<pid>/status and /proc/<pid>/fd) and the latency of
GET /predict for all servers (--predicts requests).

Reported: RSS first/last/max and whether it stays flat within 5% after the warm-up (the
first quarter of the streaming); /predict p50/p99 per quarter and whether the last
quarter's p50 stays within 25% (+5 ms) of the second's; threads and fds first/last/max;
what the producer sent and whether it kept to its schedule.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.drills import (
    AUTH,
    FAST_CLOCK_ENV,
    Daemon,
    FeedPlan,
    Producer,
    as_dict,
    percentile,
    plan_start,
    proc_sample,
)

BACKFILL_STEPS = 288  # a day: every server is forecast from the start of the streaming
FLAT = 0.05  # RSS growth after the warm-up that still counts as flat
STABLE = (1.25, 5.0)  # last quarter p50 <= 1.25 x second quarter p50 + 5 ms


def sample(daemon: Daemon, client: httpx.Client, t: float, predicts: int) -> dict[str, Any]:
    """One sample at t seconds of streaming: /proc figures and /predict latencies (ms)."""
    latencies, codes = [], set()
    for _ in range(predicts):
        began = time.perf_counter()
        response = client.get("/predict")
        latencies.append((time.perf_counter() - began) * 1000)
        codes.add(response.status_code)
    return {"t": round(t, 1), **proc_sample(daemon.pid), "predict_ms": latencies, "codes": codes}


def stream_and_sample(
    daemon: Daemon, plan: FeedPlan, sample_s: float, predicts: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Start the producer, sample while it streams; (samples, the producer's counts)."""
    producer = Producer(plan)
    producer.start()
    samples: list[dict[str, Any]] = []
    try:
        if not producer.backfilled.wait(timeout=1800):
            raise RuntimeError(f"backfill did not finish:\n{daemon.tail()}")
        duration = plan.max_ticks * plan.interval_s
        began = time.monotonic()
        with httpx.Client(base_url=daemon.url, headers=AUTH, timeout=60) as client:
            while (t := time.monotonic() - began) < duration:
                samples.append(sample(daemon, client, t, predicts))
                time.sleep(max(sample_s - (time.monotonic() - began - t), 0))
            samples.append(sample(daemon, client, time.monotonic() - began, predicts))
        produced = producer.finish(timeout=600)
    finally:
        producer.close()
    return samples, produced


def quarters(samples: list[dict[str, Any]], duration: float) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = [[], [], [], []]
    for s in samples:
        out[min(int(4 * s["t"] / duration), 3)].append(s)
    return out


def analyse(samples: list[dict[str, Any]], duration: float) -> dict[str, Any]:
    """The figures the module docstring lists."""
    parts = quarters(samples, duration)
    after = [s for part in parts[1:] for s in part]
    base = after[0]["rss_kib"] if after else samples[0]["rss_kib"]
    top_after = max((s["rss_kib"] for s in after), default=base)
    per_quarter = []
    for part in parts:
        ms = [x for s in part for x in s["predict_ms"]]
        per_quarter.append(
            {"p50_ms": _round(percentile(ms, 50)), "p99_ms": _round(percentile(ms, 99))}
        )
    q2, q4 = per_quarter[1]["p50_ms"], per_quarter[3]["p50_ms"]
    return {
        "samples": len(samples),
        "rss_mib": {
            "first": _mib(samples[0]["rss_kib"]),
            "last": _mib(samples[-1]["rss_kib"]),
            "max": _mib(max(s["rss_kib"] for s in samples)),
            "after_warmup_first": _mib(base),
            "after_warmup_max": _mib(top_after),
        },
        "rss_growth_after_warmup_pct": round(100 * (top_after - base) / base, 1),
        "rss_flat_within_5pct": top_after <= (1 + FLAT) * base,
        "predict_per_quarter": per_quarter,
        "predict_stable": q2 is not None and q4 is not None and q4 <= STABLE[0] * q2 + STABLE[1],
        "predict_status_codes": sorted({c for s in samples for c in s["codes"]}),
        **{key: _first_last_max(samples, key, parts) for key in ("threads", "fds")},
    }


def _first_last_max(
    samples: list[dict[str, Any]], key: str, parts: list[list[dict[str, Any]]]
) -> dict[str, int]:
    after = [s[key] for part in parts[1:] for s in part] or [samples[0][key]]
    return {
        "first": samples[0][key],
        "last": samples[-1][key],
        "max": max(s[key] for s in samples),
        "after_warmup_first": after[0],
        "after_warmup_max": max(after),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def run_soak(
    workdir: Path,
    servers: int = 1000,
    minutes: float = 60,
    speed: float = 6,
    sample_s: float = 10,
    predicts: int = 3,
) -> dict[str, Any]:
    """The whole soak in workdir (state/, daemon.log, producer.log); its results."""
    daemon = Daemon(workdir / "state", workdir / "daemon.log", **FAST_CLOCK_ENV)
    daemon.start()
    plan = FeedPlan(
        daemon.url,
        servers,
        plan_start(BACKFILL_STEPS),
        BACKFILL_STEPS,
        interval_s=5 / speed,
        max_ticks=int(minutes * 60 / 5),
        log=str(workdir / "producer.log"),
    )
    try:
        samples, produced = stream_and_sample(daemon, plan, sample_s, predicts)
        health = httpx.get(f"{daemon.url}/health", timeout=30).json()
        exit_code = daemon.stop()
    finally:
        daemon.kill()
    duration = plan.max_ticks * plan.interval_s
    log = daemon.log.read_text(errors="replace")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "plan": as_dict(plan),
        "wall_s": round(duration, 1),
        **analyse(samples, duration),
        "producer": produced,
        "kept_schedule": produced["stream_s"] <= duration + max(10, 0.02 * duration),
        "daemon": {k: health.get(k) for k in ("servers", "ready", "forecasts", "ticks_held")},
        "graceful_exit_code": exit_code,
        "tracebacks_in_log": log.count("Traceback"),
        "raw_samples": [{k: v for k, v in s.items() if k != "codes"} for s in samples],
    }


def summary(r: dict[str, Any]) -> str:
    rss, q = r["rss_mib"], r["predict_per_quarter"]
    quarters_text = ", ".join(f"Q{i + 1} {p['p50_ms']}/{p['p99_ms']}" for i, p in enumerate(q))
    return (
        f"soak ({r['date']}): {r['plan']['servers']} servers, {r['plan']['max_ticks']} ticks of "
        f"5 s in {r['wall_s']:.0f} s wall (producer {r['producer']['stream_s']} s, "
        f"{r['producer']['sender_produced']:,} records, {r['producer']['sender_applied']:,} "
        f"applied); RSS first {rss['first']} / last {rss['last']} / max {rss['max']} MiB, "
        f"{r['rss_growth_after_warmup_pct']}% after warm-up "
        f"({'flat' if r['rss_flat_within_5pct'] else 'NOT flat'} within 5%); /predict p50/p99 ms "
        f"{quarters_text} ({'stable' if r['predict_stable'] else 'NOT stable'}); threads "
        f"{r['threads']['first']} -> {r['threads']['last']} (max {r['threads']['max']}), fds "
        f"{r['fds']['first']} -> {r['fds']['last']} (max {r['fds']['max']})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=60, help="simulated minutes")
    parser.add_argument("--speed", type=float, default=6)
    parser.add_argument("--sample-s", type=float, default=10)
    parser.add_argument("--predicts", type=int, default=3, help="/predict calls per sample")
    parser.add_argument("--workdir", type=Path, help="keep the state and logs here")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = run_soak(
            workdir, args.servers, args.minutes, args.speed, args.sample_s, args.predicts
        )
    print(summary(result))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
