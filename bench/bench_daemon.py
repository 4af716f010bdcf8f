"""Benchmark the inference daemon over HTTP: /feed ingestion and /predict latency.

    python -m bench.bench_daemon [--servers 1000] [--batches 600] [--connections 2]

Starts tft_inference_daemon.py as a real process on a free loopback port, then:
1. feed: a separate load-generator process POSTs batches of 1,000 distinct records (one
   tick per server, 5 s apart) as fast as the daemon answers, over keep-alive
   connections; records/s = records / wall time. The daemon's /health then reports the
   ticks its buffers hold: every record sent must be there (zero lost).
2. predict: 289 steps for every server (warmup), one forecast pass, then GET /predict for
   all servers 200 times from the cache: latency p50 / p99 / max.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

from data_contract import STEP_SECONDS
from tests.daemon_helpers import make_record

ROOT = Path(__file__).resolve().parents[1]

KEY = "bench-key"
AUTH = {"X-API-Key": KEY}
T0 = 1_750_000_200
PLACEHOLDER = "2000-01-01T00:00:00Z"


def start_daemon(state_dir: str, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "TFT_API_KEY": KEY, "TFT_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "tft_inference_daemon.py", "--port", str(port)]
    command += ["--state-dir", state_dir]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"daemon did not start:\n{log.read_text()[-2000:]}")


def template(servers: int, **overrides: float) -> bytes:
    """One batch: a record per server, with a placeholder timestamp."""
    names = [f"bench{i:05d}" for i in range(servers)]
    return orjson.dumps([make_record(n, 0, timestamp=PLACEHOLDER, **overrides) for n in names])


def stamp(seconds: int) -> bytes:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)).encode()


def load_generator(url: str, servers: int, batches: int, connections: int, out) -> None:
    """The separate process: send batches[k] = every server at T0 + 5 k seconds."""
    body = template(servers)
    next_batch, lock, failures = iter(range(batches)), threading.Lock(), []

    def worker() -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
            while True:
                with lock:
                    k = next(next_batch, None)
                if k is None:
                    return
                data = body.replace(PLACEHOLDER.encode(), stamp(T0 + 5 * k))
                response = client.post("/feed", content=data)
                if response.status_code != 200:
                    failures.append(response.text[:200])

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.send((time.perf_counter() - started, failures))


def bench_feed(url: str, servers: int, batches: int, connections: int) -> None:
    receiver, sender = multiprocessing.Pipe(duplex=False)
    load = multiprocessing.Process(
        target=load_generator, args=(url, servers, batches, connections, sender)
    )
    load.start()
    seconds, failures = receiver.recv()
    load.join()
    sent = servers * batches
    held = httpx.get(f"{url}/health").json()["ticks_held"]
    print(
        f"feed: {sent:,} records in {batches} batches of {servers} over {connections} "
        f"connections: {seconds:.2f} s = {sent / seconds:,.0f} records/s"
    )
    print(
        f"feed: buffers hold {held:,} ticks; lost {sent - held:,}; failed batches {len(failures)}"
    )


def warm_up(url: str, servers: int) -> None:
    """289 steps per server (so 288 are closed), sent in batches of one step."""
    body = template(servers)
    with httpx.Client(base_url=url, headers=AUTH, timeout=300) as client:
        for k in range(289):
            data = body.replace(PLACEHOLDER.encode(), stamp(T0 + 86_400 + STEP_SECONDS * k))
            assert client.post("/feed", content=data).status_code == 200


def wait_idle(url: str, servers: int) -> None:
    """Until every server has a forecast and no pass ran for 3 s (the worker is idle)."""
    last = None
    while True:
        health = httpx.get(f"{url}/health").json()
        passes = health["last_pass"]["passes"]
        if health["forecasts"] >= servers and passes == last:
            return
        last = passes
        time.sleep(3)


def bench_predict(url: str, servers: int, requests: int) -> None:
    warm_up(url, servers)
    wait_idle(url, servers)
    latencies = []
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        size = len(client.get("/predict").content)
        for _ in range(requests):
            start = time.perf_counter()
            response = client.get("/predict")
            latencies.append(time.perf_counter() - start)
            assert response.status_code == 200
    ms = np.array(latencies) * 1000
    print(
        f"predict: {servers} servers, {size / 1e6:.1f} MB, {requests} requests: "
        f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
        f"max {ms.max():.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=600)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "daemon.log"
        process, url = start_daemon(str(Path(tmp) / "state"), log)
        try:
            bench_feed(url, args.servers, args.batches, args.connections)
            bench_predict(url, args.servers, args.requests)
        finally:
            process.terminate()
            process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
