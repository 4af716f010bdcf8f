"""Drill: kill -9 the MongoDB adapter again and again during a backlog; nothing may be lost
or applied twice.

    python -m bench.drill_adapter_kill [--kills 20] [--servers 300] [--hours 23]

The MongoDB protocol fake holds servers x hours of 1-minute documents; a real daemon
process receives them from `adapters/mongodb_adapter.py --daemon` (pages of 1,000). The
adapter is killed with SIGKILL at random moments (0.3-2 s apart) and restarted from its
state file, --kills times, then left to finish. Pass: the daemon applied exactly one
record per document and holds that many ticks; records re-sent after a kill are counted
as duplicates by the daemon, never applied twice.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from bench.bench_daemon import KEY, start_daemon
from tests.adapter_helpers import contract_docs
from tests.protocol_fakes.mongodb import MongoFake

ROOT = Path(__file__).resolve().parents[1]


def feed(url: str) -> dict:
    body = httpx.get(f"{url}/health", timeout=30).json()
    return body["feed"] | {"ticks_held": body["ticks_held"]}


def start_adapter(config: Path, state: Path, log: Path) -> subprocess.Popen:
    command = [sys.executable, "adapters/mongodb_adapter.py", "--daemon", "--interval", "0.5"]
    command += ["--config", str(config), "--state-file", str(state), "--backfill-hours", "48"]
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out)


def drill(args: argparse.Namespace, mongo: MongoFake, url: str, work: Path) -> bool:
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=1)
    docs = contract_docs(args.servers, args.hours * 60, end, step=timedelta(minutes=1))
    mongo.insert_many("monitoring", "server_metrics", docs)
    database = {"uri": mongo.uri, "database": "monitoring", "collection": "server_metrics"}
    config = work / "config.json"
    config.write_text(json.dumps({"database": database, "batch_size": 1000,
                                  "tft_daemon": {"url": url, "api_key": KEY}}))  # fmt: skip
    state, log, rng = work / "cursor.json", work / "adapter.log", random.Random(7)
    for kill in range(args.kills):
        adapter = start_adapter(config, state, log)
        time.sleep(rng.uniform(0.3, 2.0) + (1.5 if kill == 0 else 0))  # first: start-up
        adapter.send_signal(signal.SIGKILL)
        adapter.wait()
        print(f"kill {kill + 1}: {feed(url)}")
    adapter = start_adapter(config, state, log)
    deadline = time.monotonic() + 600
    while feed(url)["received"] < len(docs) and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(3)  # more polls: nothing new may arrive
    adapter.terminate()
    adapter.wait(timeout=30)
    final = feed(url)
    ok = final["applied"] == final["ticks_held"] == len(docs) and final["rejected"] == 0
    print(f"{len(docs):,} documents, {args.kills} kills: {final} -> {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--servers", type=int, default=300)
    parser.add_argument("--hours", type=int, default=23)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, MongoFake() as mongo:
        work = Path(tmp)
        daemon, url = start_daemon(str(work / "state"), work / "daemon.log")
        try:
            ok = drill(args, mongo, url, work)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
