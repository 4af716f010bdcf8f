"""Benchmark the adapters end to end: protocol fake -> adapter process -> daemon process.

    python -m bench.bench_adapters backlog [--source mongodb|elasticsearch] [--servers 100]
        [--days 7] [--batch 5000]
    python -m bench.bench_adapters steady [--source mongodb] [--servers 1000] [--seconds 60]

backlog: the fake holds servers x days of 1-minute documents (1,008,000 by default); an
adapter (`--once --backfill-hours`) forwards them all to a real daemon; records/s from
the adapter's start to its exit, and the daemon's count of applied records. Goal: 20,000
records/s or more.
steady: every 5 s the fake receives one document per server (dated now); the adapter runs
`--daemon --interval 5`; its CPU time over --seconds, as a share of one core. Goal: under
10 %.
The fakes are tests/protocol_fakes (the same servers the tests use), in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from bench.bench_daemon import KEY, start_daemon
from tests.adapter_helpers import contract_docs
from tests.protocol_fakes.elasticsearch import ElasticsearchFake
from tests.protocol_fakes.mongodb import MongoFake

ROOT = Path(__file__).resolve().parents[1]

SCRIPTS = {
    "mongodb": "adapters/mongodb_adapter.py",
    "elasticsearch": "adapters/elasticsearch_adapter.py",
}


def config(source: str, fake: Any, daemon: str, batch: int) -> dict[str, Any]:
    common = {"tft_daemon": {"url": daemon, "api_key": KEY}, "batch_size": batch}
    if source == "mongodb":
        database = {"uri": fake.uri, "database": "monitoring", "collection": "server_metrics"}
        return common | {"database": database}
    es = {"hosts": [fake.url], "index_pattern": "server-metrics", "time_field": "timestamp"}
    return common | {"elasticsearch": es}


def store(source: str, fake: Any, docs: list[dict[str, Any]]) -> None:
    if source == "mongodb":
        fake.insert_many("monitoring", "server_metrics", docs)
        return
    for doc in docs:
        doc["timestamp"] = doc["timestamp"].isoformat().replace("+00:00", "Z")
    fake.index_docs("server-metrics", docs)


def open_fake(source: str) -> Any:
    return MongoFake() if source == "mongodb" else ElasticsearchFake(auto_refresh=True)


def adapter(source: str, config_path: Path, state: Path, *args: str) -> list[str]:
    """The adapter's command line (under py-spy when BENCH_PROFILE names an output file)."""
    command = [sys.executable, SCRIPTS[source], "--config", str(config_path)]
    if os.environ.get("BENCH_PROFILE"):
        spy = ["py-spy", "record", "-o", os.environ["BENCH_PROFILE"], "-f", "raw", "--"]
        command = spy + command
    return command + ["--state-file", str(state / "cursor.json"), *args]


def applied(url: str) -> int:
    return httpx.get(f"{url}/health", timeout=30).json()["feed"]["applied"]


def backlog(args: argparse.Namespace, fake: Any, url: str, work: Path, daemon_pid: int) -> None:
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=1)
    started = time.perf_counter()
    docs = contract_docs(args.servers, args.days * 1440, end, step=timedelta(minutes=1))
    store(args.source, fake, docs)
    print(f"{len(docs):,} documents stored in {time.perf_counter() - started:.0f} s")
    path = work / "config.json"
    path.write_text(json.dumps(config(args.source, fake, url, args.batch)))
    hours = str(args.days * 24 + 1)
    cpu = {"adapter": children_cpu(), "daemon": cpu_seconds(daemon_pid)}
    cpu["fake"] = time.process_time()
    started = time.perf_counter()
    command = adapter(args.source, path, work, "--once", "--backfill-hours", hours)
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    cpu["adapter"] = children_cpu() - cpu["adapter"]
    cpu["daemon"] = cpu_seconds(daemon_pid) - cpu["daemon"]
    cpu["fake"] = time.process_time() - cpu["fake"]
    print(run.stderr[-600:])
    used = ", ".join(f"{k} {v:.1f} s ({1e6 * v / len(docs):.0f} us/record)" for k, v in cpu.items())
    print(
        f"backlog ({args.source}): {len(docs):,} documents in {seconds:.1f} s = "
        f"{len(docs) / seconds:,.0f} records/s; the daemon applied {applied(url):,}; "
        f"CPU: {used}"
    )


def steady(args: argparse.Namespace, fake: Any, url: str, work: Path, daemon_pid: int) -> None:
    path = work / "config.json"
    path.write_text(json.dumps(config(args.source, fake, url, 5000)))
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            now = datetime.now(timezone.utc).replace(microsecond=0)
            store(args.source, fake, contract_docs(args.servers, 1, now))
            stop.wait(5)

    feeder = threading.Thread(target=produce, daemon=True)
    feeder.start()
    process = subprocess.Popen(
        adapter(args.source, path, work, "--daemon", "--interval", "5"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(15)  # start-up and the first polls
        before, started = cpu_seconds(process.pid), time.perf_counter()
        time.sleep(args.seconds)
        used, wall = cpu_seconds(process.pid) - before, time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=30)
        stop.set()
    print(
        f"steady ({args.source}): {args.servers} servers every 5 s: adapter CPU "
        f"{used:.2f} s in {wall:.0f} s = {100 * used / wall:.1f} % of one core; "
        f"the daemon applied {applied(url):,}"
    )


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["backlog", "steady"])
    parser.add_argument("--source", choices=list(SCRIPTS), default="mongodb")
    parser.add_argument("--servers", type=int)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    args.servers = args.servers or (100 if args.mode == "backlog" else 1000)
    with tempfile.TemporaryDirectory() as tmp, open_fake(args.source) as fake:
        work = Path(tmp)
        daemon, url = start_daemon(str(work / "state"), work / "daemon.log")
        try:
            run = backlog if args.mode == "backlog" else steady
            run(args, fake, url, work, daemon.pid)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
