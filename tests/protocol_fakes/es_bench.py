"""Paging throughput of the Elasticsearch protocol fake through the real elasticsearch-py client.

    .venv/bin/python -m tests.protocol_fakes.es_bench
        [--servers 100] [--days 7] [--shape nested|flat] [--client-json json|orjson]

Indexes servers x days at 1-minute steps (~20 fields each, metricbeat-like nesting) into
one index per day, then pages through all of them with a PIT, a range filter and
sort [@timestamp (strict_date_optional_time_nanos), _shard_doc], 5,000 per page, and
logs documents per second and the process's peak memory. Timings are reported, never checked.
"""

from __future__ import annotations

import argparse
import gc
import logging
import resource
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from elasticsearch import Elasticsearch, OrjsonSerializer

from tests.protocol_fakes.elasticsearch import ElasticsearchFake

logger = logging.getLogger("es_bench")
START = datetime(2026, 12, 1, tzinfo=timezone.utc)
MAPPINGS = {
    "properties": {
        "@timestamp": {"type": "date"},
        "host": {"properties": {"name": {"type": "keyword"}}},
    }
}


def _stamp(minute: int) -> str:
    return (START + timedelta(minutes=minute)).isoformat(timespec="milliseconds")[:-6] + "Z"


def nested_docs(minute: int, servers: int) -> Iterator[dict[str, Any]]:
    """Metricbeat-like documents (nested objects, dotted paths), one per server."""
    stamp = _stamp(minute)
    for s in range(servers):
        load = (minute * 7 + s * 13) % 100
        yield {
            "@timestamp": stamp,
            "host": {"name": f"ppsrv{s:03d}", "os": {"family": "linux"}},
            "event": {"dataset": "system.cpu", "module": "system"},
            "system": {
                "cpu": {"total": {"pct": load / 100}, "user": {"pct": load / 200},
                        "system": {"pct": 0.05}, "iowait": {"pct": 0.01},
                        "idle": {"pct": 1 - load / 100}},
                "memory": {"used": {"pct": 0.5 + s / 1000}, "swap": {"used": {"pct": 0.0}}},
                "load": {"1": load / 10, "5": load / 12, "15": load / 15},
                "network": {"in": {"bytes": 1000 * load}, "out": {"bytes": 800 * load}},
                "filesystem": {"used": {"pct": 0.4}},
                "uptime": {"duration": {"ms": minute * 60_000}},
            },
            "state": "healthy",
        }  # fmt: skip


def flat_docs(minute: int, servers: int) -> Iterator[dict[str, Any]]:
    """Flat documents shaped like the project's data contract (20 fields), one per server."""
    stamp = _stamp(minute)
    for s in range(servers):
        load = float((minute * 7 + s * 13) % 100)
        metrics = {f"metric_{i:02d}": load + i for i in range(16)}
        yield {"@timestamp": stamp, "server_name": f"ppsrv{s:03d}", "state": "healthy",
               "uptime_days": minute // 1440, **metrics}  # fmt: skip


def fill(server: ElasticsearchFake, es: Elasticsearch, args: argparse.Namespace) -> int:
    """Create one index per day and index every document, an hour at a time; how many."""
    make = nested_docs if args.shape == "nested" else flat_docs
    total = 0
    for day in range(args.days):
        name = f"metricbeat-{(START + timedelta(days=day)):%Y.%m.%d}"
        es.indices.create(index=name, mappings=MAPPINGS)
        for hour in range(day * 24, day * 24 + 24):
            docs = [d for m in range(hour * 60, hour * 60 + 60) for d in make(m, args.servers)]
            server.index_docs(name, docs, visible=False)
            total += len(docs)
    server.refresh()
    return total


def page_all(es: Elasticsearch, days: int, page: int = 5000) -> tuple[int, int]:
    """Page through everything with a PIT; (documents, pages)."""
    pit = es.open_point_in_time(index="metricbeat-*", keep_alive="1m")["id"]
    end = (START + timedelta(days=days)).isoformat().replace("+00:00", "Z")
    query = {
        "bool": {
            "filter": [{"range": {"@timestamp": {"gte": "2026-12-01T00:00:00.000Z", "lt": end}}}]
        }
    }
    sort = [
        {"@timestamp": {"order": "asc", "format": "strict_date_optional_time_nanos"}},
        {"_shard_doc": "asc"},
    ]
    after, seen, pages = None, 0, 0
    while True:
        extra = {"search_after": after} if after else {}
        resp = es.search(pit={"id": pit, "keep_alive": "1m"}, query=query, sort=sort, size=page,
                         track_total_hits=False, **extra)  # fmt: skip
        hits = resp["hits"]["hits"]
        if not hits:
            break
        pit, after = resp["pit_id"], hits[-1]["sort"]
        seen, pages = seen + len(hits), pages + 1
    es.close_point_in_time(id=pit)
    return seen, pages


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--shape", choices=("nested", "flat"), default="nested")
    parser.add_argument("--client-json", choices=("json", "orjson"), default="json")
    parser.add_argument("--gc-threshold", type=int, help="gc.set_threshold(N) while paging")
    return parser.parse_args()


def report_paging(es: Elasticsearch, args: argparse.Namespace) -> None:
    """Page through everything twice, logging documents per second."""
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold)
    for run in ("first", "second"):
        began = time.perf_counter()
        seen, pages = page_all(es, args.days)
        took = time.perf_counter() - began
        setup = f"client {args.client_json}, gc threshold {gc.get_threshold()[0]}"
        rate = seen / took
        logger.info("%s pass (%s): %d docs, %d pages in %.1f s: %.0f docs/s",
                    run, setup, seen, pages, took, rate)  # fmt: skip


def main() -> None:
    """Run the benchmark and log its numbers."""
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    serializer = OrjsonSerializer() if args.client_json == "orjson" else None
    with ElasticsearchFake() as server, Elasticsearch(server.url, serializer=serializer) as es:
        began = time.perf_counter()
        total = fill(server, es, args)
        took = time.perf_counter() - began
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        logger.info("indexed %d %s docs in %.1f s; peak RSS %.0f MiB", total, args.shape, took, rss)
        report_paging(es, args)


if __name__ == "__main__":
    main()
