"""Benchmark the dashboard's refresh server-side, with 1,000 servers in a real daemon.

    python -m bench.bench_dashboard [--servers 1000] [--refreshes 10]

Starts tft_inference_daemon.py (as bench/bench_daemon.py does), fills it with 289 steps
for every server and waits for their forecasts. Then it times, as the dashboard's
callbacks do on each refresh, the overview, the server table and the heatmap: a fresh
/predict from the daemon (no cache) plus building the page's figures and rows. Goal:
each refresh under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.bench_daemon import KEY, start_daemon, wait_idle, warm_up
from dashboard.client import DaemonClient
from dashboard.pages import heatmap, overview, servers
from dashboard.source import Source

PAGES = {
    "overview": overview.update,
    "table": servers.update,
    "heatmap": lambda source: heatmap.update(source, 200),
}


def time_page(client: DaemonClient, update: object, refreshes: int) -> list[float]:
    """Seconds per refresh, each with its own /predict (ttl 0: nothing cached)."""
    times = []
    for _ in range(refreshes):
        started = time.perf_counter()
        update(Source(client, ttl=0.0))
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--refreshes", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        process, url = start_daemon(state, Path(state) / "daemon.log")
        try:
            warm_up(url, args.servers)
            wait_idle(url, args.servers)
            client = DaemonClient(url, KEY, 60.0)
            for name, update in PAGES.items():
                times = time_page(client, update, args.refreshes)
                print(
                    f"{name}: {args.servers} servers, {args.refreshes} refreshes: median "
                    f"{statistics.median(times):.3f} s, max {max(times):.3f} s"
                )
        finally:
            process.terminate()
            process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
