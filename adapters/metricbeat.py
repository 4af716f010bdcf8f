"""Metricbeat system-module documents -> one contract record per host and period.

Metricbeat writes one Elasticsearch document per metricset and fetch (event.dataset
"system.cpu", "system.memory", ...; one per interface for system.network and per mount
for system.filesystem). join() groups them by (host.name, period bucket) and, once a
bucket is closed, joins it into a record stamped at the bucket's start:

    cpu_*_pct        mean of system.cpu.{user,system,iowait,idle}.norm.pct x 100
                     (or .pct / system.cpu.cores x 100 without normalized percentages)
    mem_used_pct     mean of system.memory.actual.used.pct x 100
    swap_used_pct    mean of system.memory.swap.used.pct x 100
    load_average     mean of system.load.1
    net_in/out_mb_s  per interface (loopback skipped), the growth of the cumulative
                     system.network.{in,out}.bytes between its first and last document in
                     the bucket over the seconds between them, summed, in MB/s; a bucket
                     with one document per interface falls back on Metricbeat's per-fetch
                     host.network.{ingress,egress}.bytes (all interfaces, loopback included)
    disk_usage_pct   mean of system.filesystem.used.pct x 100 of the mount "/"
    uptime_days      whole days of the latest system.uptime.duration.ms (at most 365)
    java_cpu_pct, back_close_wait, front_close_wait: no source, 0

Percentages are clipped to the contract's range (normalised shares can round past 1).
Filesystem (1 m) and uptime (15 m) are fetched less often than the rest by default, so a
bucket without them keeps the host's last known value (from an earlier bucket, or from
`carry`), else 0. The state is derived by the spec's logic (mapping.derive_states).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import data_contract as dc
from adapters.mapping import (
    EPOCH,
    Failure,
    MappingError,
    as_failure,
    as_mapping_error,
    check_record,
    derive_states,
    format_time,
    get_path,
    parse_time,
    to_number,
)

BYTES_PER_MB = 1e6  # decimal megabytes, as the contract's MB/s
MS_PER_DAY = 86_400_000
LOOPBACK = frozenset({"lo", "lo0"})
ROOT_MOUNT = "/"
CPU_STATES = {
    "cpu_user_pct": "user",
    "cpu_sys_pct": "system",
    "cpu_iowait_pct": "iowait",
    "cpu_idle_pct": "idle",
}
NETWORK = {"net_in_mb_s": ("in", "ingress"), "net_out_mb_s": ("out", "egress")}
JOINED = frozenset(  # the metricsets read; a bucket with none of them is skipped
    ("system.cpu", "system.memory", "system.load")
    + ("system.network", "system.filesystem", "system.uptime")
)
CARRIED = ("disk_usage_pct", "uptime_days")  # slow metricsets: last known value kept

Sample = tuple[datetime, dict]
Stamp = datetime | MappingError  # a document's time, or why it has none
Key = tuple[int, str]  # (bucket number, host name)


def dataset(doc: dict) -> str | None:
    """The document's metricset, e.g. "system.cpu" (event.dataset, else module.metricset)."""
    name = get_path(doc, "event.dataset")
    if isinstance(name, str):
        return name
    metricset = get_path(doc, "metricset.name")
    if not isinstance(metricset, str):
        return None
    module = get_path(doc, "event.module") or get_path(doc, "metricset.module") or "system"
    return f"{module}.{metricset}"


def join(
    docs: list[dict],
    *,
    period_s: float,
    closed_before: datetime,
    time_field: str = "@timestamp",
    complete: bool = False,
    carry: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[dict], list[Failure], int]:
    """(records, failures, consumed) of documents sorted by time.

    A bucket [start, start + period_s) is joined once closed: its end <= closed_before
    and, unless complete (the caller's query returned every document up to now), <= the
    time of the latest document, so a page cut at batch_size never splits a bucket.
    consumed: the length of the prefix of docs that is done with (joined, failed, or in a
    bucket without system metricsets); the caller offers docs[consumed:] again with the
    next page. carry: {host: its last emitted record}, for the slow metricsets (CARRIED).
    """
    if not 0 < period_s < math.inf:
        raise ValueError(f"period_s must be a positive number of seconds, got {period_s}")
    period = timedelta(seconds=period_s)
    times = [_time(doc, time_field) for doc in docs]
    consumed = _consumed(times, period, _cutoff(times, parse_time(closed_before), complete))
    buckets, failures = _group(docs[:consumed], times, period, time_field)
    records, bucket_failures = _join_buckets(buckets, period, carry or {})
    return records, sorted(failures + bucket_failures, key=lambda f: f.index), consumed


def _time(doc: object, time_field: str) -> datetime | MappingError:
    try:
        return parse_time(get_path(doc, time_field), time_field)
    except Exception as exc:  # the per-document boundary (see as_mapping_error)
        return as_mapping_error(exc)


def _bucket(moment: datetime, period: timedelta) -> int:
    return (moment - EPOCH) // period


def _cutoff(times: list[Stamp], closed_before: datetime, complete: bool) -> datetime:
    known = [t for t in times if isinstance(t, datetime)]
    return closed_before if complete or not known else min(closed_before, max(known))


def _consumed(times: list[Stamp], period: timedelta, cutoff: datetime) -> int:
    """Index of the first document whose bucket is still open (len(times) if none)."""
    for index, moment in enumerate(times):
        if isinstance(moment, datetime) and EPOCH + (_bucket(moment, period) + 1) * period > cutoff:
            return index
    return len(times)


def _group(
    docs: list[dict], times: list[Stamp], period: timedelta, time_field: str
) -> tuple[dict[Key, list[tuple[int, Sample]]], list[Failure]]:
    """Documents by (bucket, host), each with its index; a Failure for each without both."""
    buckets: dict[Key, list[tuple[int, Sample]]] = defaultdict(list)
    failures = []
    for index, doc in enumerate(docs):
        host, moment = get_path(doc, "host.name"), times[index]
        if isinstance(moment, MappingError):
            failures.append(Failure(index, moment.field, moment.problem, doc))
        elif not isinstance(host, str) or not host.strip():
            what = "missing" if host is None else f"must be a non-empty string (got {host!r:.60})"
            failures.append(Failure(index, "host.name", what, doc))
        else:
            buckets[_bucket(moment, period), host].append((index, (moment, doc)))
    return buckets, failures


def _join_buckets(
    buckets: dict[Key, list[tuple[int, Sample]]],
    period: timedelta,
    carry: Mapping[str, Mapping[str, Any]],
) -> tuple[list[dict], list[Failure]]:
    """Records of the buckets in time order (then host), and a Failure for each that fails."""
    known = {host: {c: record[c] for c in CARRIED if c in record} for host, record in carry.items()}
    joined: list[tuple[int, dict, dict]] = []
    failures = []
    for key in sorted(buckets):
        first, samples = buckets[key][0][0], [sample for _, sample in buckets[key]]
        start = EPOCH + key[0] * period
        documents = [doc for _, doc in samples]
        summary = {"host.name": key[1], "bucket_start": format_time(start), "documents": documents}
        try:
            values = _values(samples, period.total_seconds(), known.setdefault(key[1], {}))
        except Exception as exc:  # the per-bucket boundary (see as_failure)
            failures.append(as_failure(first, exc, summary))
            continue
        if values is not None:
            record = {"timestamp": start, "server_name": key[1], "state": None, **values}
            joined.append((first, record, summary))
    return _checked(joined, failures)


def _checked(
    joined: list[tuple[int, dict, dict]], failures: list[Failure]
) -> tuple[list[dict], list[Failure]]:
    states = derive_states([record for _, record, _ in joined])
    records = []
    for (first, record, summary), state in zip(joined, states, strict=True):
        try:
            records.append(check_record({**record, "state": state}))
        except MappingError as exc:
            failures.append(Failure(first, exc.field, exc.problem, summary))
    return records, failures


def _values(samples: list[Sample], period_s: float, known: dict[str, Any]) -> dict | None:
    """The 14 metrics of one host's bucket; None if it holds no joined metricset."""
    by_set: dict[str | None, list[Sample]] = defaultdict(list)
    for moment, doc in samples:
        by_set[dataset(doc)].append((moment, doc))
    if not by_set.keys() & JOINED:
        return None
    if "system.cpu" not in by_set:
        raise MappingError("system.cpu", "no system.cpu document in the period")
    values: dict[str, Any] = {name: 0.0 for name in dc.METRIC_COLUMNS}
    values.update(_cpu(by_set["system.cpu"]))
    values["mem_used_pct"] = _pct("mem_used_pct", by_set["system.memory"], "memory.actual.used")
    values["swap_used_pct"] = _pct("swap_used_pct", by_set["system.memory"], "memory.swap.used")
    values["load_average"] = _mean(by_set["system.load"], "system.load.1") or 0.0
    values.update(_network(by_set["system.network"], period_s))
    known.update(_slow(by_set["system.filesystem"], by_set["system.uptime"]))
    values.update(known)
    return values


def _num(doc: dict, path: str) -> float | None:
    """The number at path; None if absent; MappingError if present but not a number."""
    value = get_path(doc, path)
    return None if value is None else to_number(value, path)


def _mean(samples: list[Sample], path: str) -> float | None:
    found = [v for _, doc in samples if (v := _num(doc, path)) is not None]
    return sum(found) / len(found) if found else None


def _clip(column: str, value: float) -> float:
    spec = dc.METRIC_SPECS[column]
    return max(spec.low, value if spec.high is None else min(value, spec.high))


def _pct(column: str, samples: list[Sample], metric: str) -> float:
    fraction = _mean(samples, f"system.{metric}.pct")
    return 0.0 if fraction is None else _clip(column, 100.0 * fraction)


def _cpu(samples: list[Sample]) -> dict[str, float]:
    """CPU shares in percent of the whole machine; idle is required."""
    out = {}
    for column, state in CPU_STATES.items():
        found = [v for _, doc in samples if (v := _cpu_share(doc, state)) is not None]
        if not found and state == "idle":
            raise MappingError("system.cpu.idle.pct", "missing")
        out[column] = _clip(column, 100.0 * sum(found) / len(found)) if found else 0.0
    return out


def _cpu_share(doc: dict, state: str) -> float | None:
    """system.cpu.<state>.norm.pct, else .pct (0..cores) / system.cpu.cores."""
    norm = _num(doc, f"system.cpu.{state}.norm.pct")
    if norm is not None:
        return norm
    pct = _num(doc, f"system.cpu.{state}.pct")
    if pct is None:
        return None
    cores = _num(doc, "system.cpu.cores")
    if not cores or cores <= 0:
        problem = f"missing or not positive: needed to normalise system.cpu.{state}.pct"
        raise MappingError("system.cpu.cores", problem)
    return pct / cores


def _network(samples: list[Sample], period_s: float) -> dict[str, float]:
    """MB/s in and out: interface counters where an interface has two documents, else
    the per-fetch host.network totals, else 0."""
    interfaces: dict[str, list[Sample]] = defaultdict(list)
    totals = []
    for moment, doc in samples:
        name = get_path(doc, "system.network.name")
        if name is None:
            totals.append((moment, doc))
        elif name not in LOOPBACK:
            interfaces[name].append((moment, doc))
    out = {}
    for column, (direction, ecs) in NETWORK.items():
        rates = [_counter_rate(s, f"system.network.{direction}.bytes") for s in interfaces.values()]
        rates = [r for r in rates if r is not None]
        rate = sum(rates) if rates else _fetch_rate(totals, f"host.network.{ecs}.bytes", period_s)
        out[column] = rate / BYTES_PER_MB
    return out


def _counter_rate(samples: list[Sample], path: str) -> float | None:
    """Bytes/s of a cumulative counter between its first and last sample (None: fewer
    than two, or the counter went back: a reboot or a wrap)."""
    counted = [(moment, v) for moment, doc in samples if (v := _num(doc, path)) is not None]
    if len(counted) < 2:
        return None
    (t0, v0), (t1, v1) = counted[0], counted[-1]
    seconds = (t1 - t0).total_seconds()
    return (v1 - v0) / seconds if seconds > 0 and v1 >= v0 else None


def _fetch_rate(samples: list[Sample], path: str, period_s: float) -> float:
    """Bytes/s of per-fetch deltas: their sum over the seconds their fetches cover."""
    total, seconds = 0.0, 0.0
    for _, doc in samples:
        delta = _num(doc, path)
        if delta is None or not 0 <= delta < 2**63:  # 2**63+: Metricbeat's unsigned wrap
            continue
        period_ms = _num(doc, "metricset.period")
        total += delta
        seconds += period_ms / 1000.0 if period_ms else period_s
    return total / seconds if seconds else 0.0


def _slow(filesystems: list[Sample], uptimes: list[Sample]) -> dict[str, float]:
    """disk_usage_pct of the root mount and uptime_days, where the bucket has them."""
    out = {}
    root = [s for s in filesystems if get_path(s[1], "system.filesystem.mount_point") == ROOT_MOUNT]
    used = _mean(root, "system.filesystem.used.pct")
    if used is not None:
        out["disk_usage_pct"] = _clip("disk_usage_pct", 100.0 * used)
    stamps = [v for _, doc in uptimes if (v := _num(doc, "system.uptime.duration.ms")) is not None]
    if stamps:
        out["uptime_days"] = _clip("uptime_days", float(math.floor(stamps[-1] / MS_PER_DAY)))
    return out
