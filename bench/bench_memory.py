"""Benchmark the daemon's memory: its RSS with --servers ready servers and their forecasts.

    python -m bench.bench_memory [--servers 10000] [--batch-size 256]

Starts tft_inference_daemon.py as a real process (default model, CPU), feeds it 289
steps for every server over HTTP (one step per POST), waits for the forecast pass to
cover them all, renders /predict once, and reads the daemon's resident set size (VmRSS)
and its peak (VmHWM) from /proc/<pid>/status after each stage.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx

from bench.bench_daemon import AUTH, start_daemon, warm_up


def memory(pid: int) -> str:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    rss, peak = (int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))
    return f"RSS {rss:,.0f} MiB (peak {peak:,.0f} MiB)"


def wait_for_forecasts(url: str, servers: int) -> None:
    while httpx.get(f"{url}/health", timeout=60).json()["forecasts"] < servers:
        time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    os.environ["TFT_MAX_SERVERS"] = str(args.servers)
    os.environ["TFT_FORECAST_BATCH_SIZE"] = str(args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_daemon(str(Path(tmp) / "state"), Path(tmp) / "daemon.log")
        try:
            print(f"started, model loaded: {memory(process.pid)}")
            start = time.perf_counter()
            warm_up(url, args.servers)
            print(
                f"{args.servers:,} servers x 289 steps fed in "
                f"{time.perf_counter() - start:.0f} s: {memory(process.pid)}"
            )
            wait_for_forecasts(url, args.servers)
            print(
                f"forecasts for all {time.perf_counter() - start:.0f} s after the first "
                f"POST: {memory(process.pid)}"
            )
            size = len(httpx.get(f"{url}/predict", headers=AUTH, timeout=300).content)
            print(f"/predict rendered ({size / 1e6:.0f} MB): {memory(process.pid)}")
        finally:
            process.terminate()
            process.wait(timeout=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
