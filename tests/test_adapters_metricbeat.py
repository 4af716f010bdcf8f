"""adapters.metricbeat: Metricbeat system-module documents joined into contract records."""

from __future__ import annotations

import copy
import math
from datetime import datetime, timedelta, timezone

import orjson
import pytest

import data_contract as dc
from adapters.mapping import format_time
from adapters.metricbeat import dataset, join
from contract_parse import parse_feed

UTC = timezone.utc
START = datetime(2024, 1, 3, 14, 0, tzinfo=UTC)  # a Wednesday afternoon: no morning spike
FAR = START + timedelta(days=1)
FETCH_S = 10  # Metricbeat's period for the system module
CORES = 4
BOOT_BYTES = 10**12  # interface counters are cumulative since boot
# bytes per fetch (10 s) on each interface: (in, out)
TRAFFIC = {"eth0": (1_000_000, 2_000_000), "eth1": (500_000, 0), "lo": (9_000_000, 9_000_000)}
UPTIME_MS = int(3.5 * 86_400_000)


def cpu_shares(host: int) -> dict[str, float]:
    user = 0.20 + 0.10 * host
    return {"user": user, "system": 0.05, "iowait": 0.02, "idle": 1 - user - 0.07, "nice": 0.0}


def merge(base: dict, extra: dict) -> dict:
    """base with extra's keys added, recursively (both stay unchanged)."""
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both else value
    return out


def event(moment: datetime, host: str, name: str, body: dict) -> dict:
    """One Metricbeat 8.x document of the system module."""
    envelope = {
        "@timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "agent": {"type": "metricbeat", "version": "8.13.4"},
        "host": {"name": host, "hostname": host},
        "event": {"dataset": f"system.{name}", "module": "system", "duration": 1_234_567},
        "metricset": {"name": name, "period": FETCH_S * 1000},
        "service": {"type": "system"},
    }
    return merge(envelope, body)


def cpu_body(host: int, norm: bool = True) -> dict:
    shares = cpu_shares(host)
    cpu: dict = {"cores": CORES}
    for state, share in shares.items():
        cpu[state] = {"pct": round(share * CORES, 6)}
        if norm:
            cpu[state]["norm"] = {"pct": share}
    return {"system": {"cpu": cpu}, "host": {"cpu": {"usage": 1 - shares["idle"]}}}


def memory_body(host: int) -> dict:
    memory = {
        "total": 16 * 2**30,
        "actual": {"used": {"pct": 0.50 + 0.10 * host, "bytes": 8 * 2**30}},
        "used": {"pct": 0.93, "bytes": 15 * 2**30},
        "swap": {"used": {"pct": 0.10, "bytes": 2**28}, "total": 2**31},
    }
    return {"system": {"memory": memory}}


def interface_body(name: str, step: int) -> dict:
    sent_in, sent_out = TRAFFIC[name]
    counters = {
        "in": {"bytes": BOOT_BYTES + step * sent_in, "packets": step * 900, "errors": 0},
        "out": {"bytes": BOOT_BYTES + step * sent_out, "packets": step * 700, "errors": 0},
    }
    return {"system": {"network": {"name": name, **counters}}}


def fetch(host: int, step: int, *, filesystem: bool, uptime: bool) -> list[dict]:
    """The documents of one fetch of one host (each metricset a few ms apart)."""
    name, at = f"web-{host}", START + timedelta(seconds=FETCH_S * step)

    def ms(offset: int) -> datetime:
        return at + timedelta(milliseconds=offset)

    docs = [
        event(ms(100), name, "cpu", cpu_body(host)),
        event(ms(200), name, "memory", memory_body(host)),
        event(ms(300), name, "load", {"system": {"load": {"1": 1.5 + host, "5": 1.0, "15": 0.5}}}),
    ]
    docs += [event(ms(400), name, "network", interface_body(n, step)) for n in TRAFFIC]
    if step > 0:  # Metricbeat's per-fetch totals (all interfaces), from its second fetch on
        totals = {k: sum(t[i] for t in TRAFFIC.values()) for i, k in enumerate(("in", "out"))}
        network = {"ingress": {"bytes": totals["in"]}, "egress": {"bytes": totals["out"]}}
        docs.append(event(ms(401), name, "network", {"host": {"network": network}}))
    if filesystem:
        for mount, pct in (("/", 0.42), ("/data", 0.90)):
            body = {"mount_point": mount, "used": {"pct": pct}, "device_name": "/dev/sda1"}
            docs.append(event(ms(500), name, "filesystem", {"system": {"filesystem": body}}))
    if uptime:
        duration = {"duration": {"ms": UPTIME_MS + step * FETCH_S * 1000}}
        docs.append(event(ms(600), name, "uptime", {"system": {"uptime": duration}}))
    process = {"process": {"name": "java", "pid": 4242}, "system": {"process": {"state": "S"}}}
    docs.append(event(ms(700), name, "process", process))
    return docs


def metricbeat_docs(hosts: int = 2, steps: int = 6, slow_every: int = 1) -> list[dict]:
    """Documents of hosts x steps fetches, sorted by time as the adapter's query returns
    them; filesystem and uptime only every slow_every fetches."""
    docs = [
        doc
        for step in range(steps)
        for host in range(hosts)
        for doc in fetch(
            host, step, filesystem=step % slow_every == 0, uptime=step % slow_every == 0
        )
    ]
    return sorted(docs, key=lambda d: d["@timestamp"])


def expected(host: int, bucket: int, period_s: int, net: tuple[float, float]) -> dict:
    shares = cpu_shares(host)
    return {
        "timestamp": format_time(START + timedelta(seconds=bucket * period_s)),
        "server_name": f"web-{host}",
        "state": "healthy",
        "cpu_user_pct": pytest.approx(100 * shares["user"]),
        "cpu_sys_pct": pytest.approx(5.0),
        "cpu_iowait_pct": pytest.approx(2.0),
        "cpu_idle_pct": pytest.approx(100 * shares["idle"]),
        "java_cpu_pct": 0.0,
        "mem_used_pct": pytest.approx(50.0 + 10 * host),
        "swap_used_pct": pytest.approx(10.0),
        "disk_usage_pct": pytest.approx(42.0),
        "net_in_mb_s": pytest.approx(net[0]),
        "net_out_mb_s": pytest.approx(net[1]),
        "back_close_wait": 0,
        "front_close_wait": 0,
        "load_average": 1.5 + host,
        "uptime_days": 3,
    }


# eth0 + eth1 over 10 s, in MB/s; lo (9 MB a fetch each way) is not counted
INTERFACE_RATES = (0.15, 0.2)
# Metricbeat's host.network totals include lo
TOTAL_RATES = (1.05, 1.1)


def test_buckets_of_three_fetches_join_to_exact_records() -> None:
    records, failures, consumed = join(
        metricbeat_docs(steps=6), period_s=30, closed_before=FAR, complete=True
    )
    assert failures == []
    assert consumed == len(metricbeat_docs(steps=6))
    assert records == [expected(h, b, 30, INTERFACE_RATES) for b in range(2) for h in range(2)]


def test_records_are_what_the_daemon_feed_accepts() -> None:
    records, _, _ = join(metricbeat_docs(), period_s=30, closed_before=FAR, complete=True)
    batch = parse_feed(orjson.dumps(records))
    assert len(batch) == 4
    assert batch.values[:, dc.METRIC_COLUMNS.index("mem_used_pct")].tolist() == pytest.approx(
        [50.0, 60.0, 50.0, 60.0]
    )


def test_loopback_traffic_is_ignored() -> None:
    docs = metricbeat_docs()
    busy = copy.deepcopy(docs)
    for doc in busy:
        if doc.get("system", {}).get("network", {}).get("name") == "lo":
            doc["system"]["network"]["in"]["bytes"] *= 7
    base = join(docs, period_s=30, closed_before=FAR, complete=True)[0]
    assert join(busy, period_s=30, closed_before=FAR, complete=True)[0] == base
    assert base[0]["net_in_mb_s"] == pytest.approx(0.15)


def test_one_fetch_per_bucket_falls_back_on_metricbeat_totals() -> None:
    records, failures, _ = join(
        metricbeat_docs(steps=3), period_s=10, closed_before=FAR, complete=True
    )
    assert failures == []
    by_bucket = {(r["timestamp"], r["server_name"]): r for r in records}
    first = by_bucket[format_time(START), "web-0"]  # no totals on Metricbeat's first fetch
    later = by_bucket[format_time(START + timedelta(seconds=20)), "web-1"]
    assert (first["net_in_mb_s"], first["net_out_mb_s"]) == (0.0, 0.0)
    assert later == expected(1, 2, 10, TOTAL_RATES)


def test_cpu_without_normalized_percentages_is_divided_by_the_cores() -> None:
    docs = metricbeat_docs()
    for doc in docs:
        for share in doc.get("system", {}).get("cpu", {}).values():
            if isinstance(share, dict):
                del share["norm"]
    records, failures, _ = join(docs, period_s=30, closed_before=FAR, complete=True)
    assert failures == []
    assert records == [expected(h, b, 30, INTERFACE_RATES) for b in range(2) for h in range(2)]


def test_normalized_percentages_win_over_per_core_ones() -> None:
    docs = metricbeat_docs()
    for doc in docs:
        for share in doc.get("system", {}).get("cpu", {}).values():
            if isinstance(share, dict):
                share["pct"] = 0.0  # would read as all-zero shares (and no idle)
    records, failures, _ = join(docs, period_s=30, closed_before=FAR, complete=True)
    assert failures == []
    assert records == [expected(h, b, 30, INTERFACE_RATES) for b in range(2) for h in range(2)]


def test_a_closed_bucket_is_joined_and_an_open_one_left_for_later() -> None:
    docs = metricbeat_docs(steps=6)
    closed_before = START + timedelta(seconds=45)  # [0, 30) closed, [30, 60) open
    records, failures, consumed = join(docs, period_s=30, closed_before=closed_before)
    assert failures == []
    assert [r["timestamp"] for r in records] == [format_time(START)] * 2
    assert docs[consumed]["@timestamp"] == "2024-01-03T14:00:30.100Z"
    assert docs[consumed - 1]["@timestamp"] < "2024-01-03T14:00:30"


def test_without_complete_the_latest_documents_bucket_waits_for_a_later_document() -> None:
    docs = metricbeat_docs(steps=6)
    records, _, consumed = join(docs, period_s=30, closed_before=FAR)
    assert {r["timestamp"] for r in records} == {format_time(START)}
    assert docs[consumed]["@timestamp"].startswith("2024-01-03T14:00:30")
    records, _, consumed = join(docs, period_s=30, closed_before=FAR, complete=True)
    assert len(records) == 4 and consumed == len(docs)


@pytest.mark.parametrize(("period_s", "slow_every"), [(30, 1), (10, 3), (20, 3)])
def test_a_page_boundary_anywhere_gives_each_record_once(period_s: int, slow_every: int) -> None:
    docs = metricbeat_docs(steps=9, slow_every=slow_every)
    whole, whole_failures, _ = join(docs, period_s=period_s, closed_before=FAR, complete=True)
    assert whole_failures == [] and len(whole) == 2 * math.ceil(9 * FETCH_S / period_s)
    for cut in range(1, len(docs)):
        first, failures, consumed = join(docs[:cut], period_s=period_s, closed_before=FAR)
        carry = {r["server_name"]: r for r in first}
        rest = docs[consumed:]
        second, more, _ = join(
            rest, period_s=period_s, closed_before=FAR, complete=True, carry=carry
        )
        assert failures == more == []
        assert first + second == whole, f"page cut after {cut} documents"


def test_slow_metricsets_keep_the_last_known_value() -> None:
    docs = metricbeat_docs(steps=3, slow_every=3)  # filesystem and uptime on fetch 0 only
    records, _, _ = join(docs, period_s=10, closed_before=FAR, complete=True)
    assert [r["disk_usage_pct"] for r in records] == pytest.approx([42.0] * 6)
    assert [r["uptime_days"] for r in records] == [3] * 6
    later = [d for d in docs if d["@timestamp"] >= "2024-01-03T14:00:10"]
    alone, _, _ = join(later, period_s=10, closed_before=FAR, complete=True)
    assert {r["disk_usage_pct"] for r in alone} == {0.0}
    carry = {r["server_name"]: r for r in records[:2]}
    carried, _, _ = join(later, period_s=10, closed_before=FAR, complete=True, carry=carry)
    assert carried == records[2:]


def test_disk_is_the_root_mount() -> None:
    docs = [
        d
        for d in metricbeat_docs()
        if d.get("system", {}).get("filesystem", {}).get("mount_point") != "/"
    ]
    records, _, _ = join(docs, period_s=30, closed_before=FAR, complete=True)
    assert {r["disk_usage_pct"] for r in records} == {0.0}  # /data (90 %) is not the disk


def test_uptime_past_a_year_is_the_contracts_maximum() -> None:
    docs = metricbeat_docs(steps=3)
    for doc in docs:
        if "uptime" in doc.get("system", {}):
            doc["system"]["uptime"]["duration"]["ms"] = 500 * 86_400_000
    records, failures, _ = join(docs, period_s=30, closed_before=FAR, complete=True)
    assert failures == [] and {r["uptime_days"] for r in records} == {365}


def test_a_host_without_a_cpu_document_is_a_failure_and_is_consumed() -> None:
    docs = [
        d
        for d in metricbeat_docs(steps=6)
        if not (d["host"]["name"] == "web-1" and dataset(d) == "system.cpu")
    ]
    records, failures, consumed = join(docs, period_s=30, closed_before=FAR, complete=True)
    assert [r["server_name"] for r in records] == ["web-0", "web-0"]
    assert [(f.field, f.document["host.name"]) for f in failures] == [("system.cpu", "web-1")] * 2
    assert failures[0].problem == "no system.cpu document in the period"
    assert failures[0].document["bucket_start"] == format_time(START)
    assert failures[0].index == next(i for i, d in enumerate(docs) if d["host"]["name"] == "web-1")
    assert all(d["host"]["name"] == "web-1" for d in failures[0].document["documents"])
    assert consumed == len(docs)


def test_documents_without_a_host_or_a_time_are_failures() -> None:
    docs = metricbeat_docs(steps=3)
    del docs[1]["host"]["name"]
    docs[2]["@timestamp"] = "not a time"
    docs[4]["host"]["name"] = ""
    records, failures, consumed = join(docs, period_s=30, closed_before=FAR, complete=True)
    assert [(f.index, f.field) for f in failures] == [
        (1, "host.name"),
        (2, "@timestamp"),
        (4, "host.name"),
    ]
    assert failures[1].document is docs[2]
    assert len(records) == 2 and consumed == len(docs)


def test_a_bucket_with_only_unjoined_metricsets_is_skipped() -> None:
    docs = [d for d in metricbeat_docs(steps=3) if dataset(d) == "system.process"]
    assert join(docs, period_s=30, closed_before=FAR, complete=True) == ([], [], len(docs))


def test_a_malformed_value_fails_its_bucket_naming_the_field() -> None:
    docs = metricbeat_docs(steps=3)
    cpu = next(d for d in docs if dataset(d) == "system.cpu")
    cpu["system"]["cpu"]["user"]["norm"]["pct"] = "high"
    records, failures, _ = join(docs, period_s=30, closed_before=FAR, complete=True)
    assert len(records) == 1
    assert failures[0].field == "system.cpu.user.norm.pct"
    assert "not a number" in failures[0].problem


def test_dataset_falls_back_on_the_metricset_name() -> None:
    assert dataset({"event": {"dataset": "system.cpu"}}) == "system.cpu"
    assert dataset({"metricset": {"name": "memory", "module": "system"}}) == "system.memory"
    assert dataset({"metricset": {"name": "load"}}) == "system.load"
    assert dataset({"event": {"module": "docker"}, "metricset": {"name": "cpu"}}) == "docker.cpu"
    assert dataset({"message": "a log line"}) is None


def test_a_heavily_loaded_host_gets_a_derived_state() -> None:
    docs = metricbeat_docs(steps=3)
    for doc in docs:
        if doc.get("system", {}).get("memory"):
            doc["system"]["memory"]["actual"]["used"]["pct"] = 0.97
    records, _, _ = join(docs, period_s=30, closed_before=FAR, complete=True)
    assert {r["state"] for r in records} == {"critical_issue"}


def test_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="period_s"):
        join([], period_s=0, closed_before=FAR)


def test_nothing_joins_to_nothing() -> None:
    assert join([], period_s=30, closed_before=FAR) == ([], [], 0)


def test_a_bucket_that_breaks_the_join_is_a_failure_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An interface name that is a list (unhashable) raised TypeError out of join()."""
    docs = metricbeat_docs(steps=3)
    for doc in docs:
        network = doc.get("system", {}).get("network", {})
        if doc["host"]["name"] == "web-1" and network.get("name") == "eth0":
            network["name"] = ["eth0"]
    records, failures, _ = join(docs, period_s=30, closed_before=FAR, complete=True)
    assert [r["server_name"] for r in records] == ["web-0"]
    assert [(f.field, f.problem) for f in failures] == [
        ("(document)", "unexpected TypeError: unhashable type: 'list'")
    ]
    assert failures[0].document["host.name"] == "web-1"
    assert "unexpected TypeError" in caplog.text
