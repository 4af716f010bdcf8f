"""adapters/elasticsearch_adapter.py through elasticsearch-py against the Elasticsearch
protocol fake (tests/protocol_fakes/elasticsearch.py) on a real socket."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters import runner
from adapters.base import Loop
from adapters.config import AdapterSettings
from adapters.elasticsearch_adapter import SPEC, EsAdapterConfig, connect
from contract_parse import parse_feed
from tests.adapter_helpers import (
    Recorder,
    adapter_loop,
    contract_docs,
    keys,
    now_step,
    one_ahead_then_five,
    quarantined,
    write_config,
)
from tests.daemon_helpers import KEY
from tests.protocol_fakes.elasticsearch import ElasticsearchFake
from tests.test_adapters_metricbeat import FAR, metricbeat_docs

ROOT = Path(__file__).resolve().parents[1]
INDEX = "server-metrics"


def config_body(url: str, **extra: Any) -> dict[str, Any]:
    source = {"hosts": [url], "index_pattern": "server-metrics*", "time_field": "timestamp"}
    daemon = {"url": "http://127.0.0.1:9", "api_key": KEY}
    return {"elasticsearch": source | extra.pop("source", {}), "tft_daemon": daemon} | extra


def loop(
    body: dict[str, Any], tmp_path: Path, send: Recorder, settings: AdapterSettings | None = None
) -> Loop:
    config = EsAdapterConfig.model_validate(body)
    return adapter_loop(SPEC, config, tmp_path, send, settings=settings)


@pytest.mark.parametrize("version", ["8.15.0", "9.1.0"])
def test_pages_through_shared_timestamps_once_and_resumes(tmp_path: Path, version: str) -> None:
    end = now_step()
    with ElasticsearchFake(version=version) as server:
        server.index_docs(INDEX, contract_docs(servers=700, steps=3, end=end, iso=True))
        send = Recorder()
        body = config_body(server.url, batch_size=300)
        first = loop(body, tmp_path, send)
        first.poll(now=end + timedelta(minutes=1))
        first.source.close()
        again = Recorder()
        second = loop(body, tmp_path, again)
        second.poll(now=end + timedelta(minutes=1))
        second.source.close()
    assert len(send.sent) == 2100 and len(set(keys(send.sent))) == 2100 and again.sent == []


def test_documents_refreshed_late_are_sent_once(tmp_path: Path) -> None:
    end = now_step()
    with ElasticsearchFake() as server:
        server.index_docs(INDEX, contract_docs(servers=3, steps=4, end=end, iso=True))
        send = Recorder()
        adapter = loop(config_body(server.url), tmp_path, send)
        adapter.poll(now=end)
        late = contract_docs(servers=1, steps=1, end=end - timedelta(seconds=30), iso=True)
        late[0]["server_name"] = "late"
        server.index_docs(INDEX, late, visible=False)
        adapter.poll(now=end)
        assert len(send.sent) == 12
        server.refresh(INDEX)
        adapter.poll(now=end)
        adapter.poll(now=end)
        adapter.source.close()
    assert len(send.sent) == 13 and send.sent[-1]["server_name"] == "late"


def test_a_host_ahead_of_the_clock_hides_no_other_host(tmp_path: Path) -> None:
    """Issue 18: one host 10 min ahead, then five other hosts: all five are delivered, the
    early one is quarantined once (and never sent, even once its time has come)."""
    end = now_step()
    ahead, others = one_ahead_then_five(end, iso=True)
    with ElasticsearchFake() as server:
        server.index_docs(INDEX, ahead)
        send = Recorder()
        adapter = loop(config_body(server.url), tmp_path, send)
        first = adapter.poll(now=end)
        server.index_docs(INDEX, others)
        second = adapter.poll(now=end + timedelta(seconds=10))
        cursor = adapter.cursor.time
        later = adapter.poll(now=end + timedelta(minutes=11))  # the early document's time came
        adapter.source.close()
    assert [r["server_name"] for r in send.sent] == [f"host{k}" for k in range(5)]
    assert cursor is not None and cursor <= end + timedelta(seconds=10)
    assert (first.future, second.future, later.future) == (1, 0, 0)
    [line] = quarantined(tmp_path)
    assert line["kind"] == "future" and line["document"]["server_name"] == "fast-clock"
    assert "600 s ahead" in line["problem"] and "TFT_MAX_CLOCK_SKEW_S" in line["problem"]


def test_metricbeat_example_config_joins_metricbeat_documents(tmp_path: Path) -> None:
    body = json.loads((ROOT / "adapters/elasticsearch_metricbeat_config.json").read_text())
    docs = metricbeat_docs(hosts=3, steps=18)  # 3 minutes of 10 s fetches: 3 buckets of 60 s
    with ElasticsearchFake() as server:
        server.index_docs("metricbeat-8.15.0-2024.01.03", docs)
        body["elasticsearch"]["hosts"] = [server.url]
        body["batch_size"] = 50  # pages cut through buckets
        send = Recorder()
        adapter = loop(body, tmp_path, send)
        totals = adapter.poll(now=FAR)
        adapter.source.close()
    assert totals.unmappable == 0 and len(send.sent) == 3 * 3
    stamps = sorted({r["timestamp"] for r in send.sent})
    assert set(keys(send.sent)) == {(f"web-{h}", t) for h in range(3) for t in stamps}
    assert len(stamps) == 3
    parse_feed(json.dumps(send.sent).encode())  # the daemon takes every record
    assert all(r["net_in_mb_s"] > 0 and r["disk_usage_pct"] == 42.0 for r in send.sent)


def test_api_key_and_basic_auth_with_the_password_from_the_environment(tmp_path: Path) -> None:
    end = now_step()
    with ElasticsearchFake(basic_auth=("monitor", "s3cret")) as server:
        server.index_docs(INDEX, contract_docs(servers=1, steps=2, end=end, iso=True))
        settings = AdapterSettings(_env_file=None, tft_elasticsearch_password=SecretStr("s3cret"))
        body = config_body(server.url, source={"username": "monitor"})
        send = Recorder()
        adapter = loop(body, tmp_path, send, settings)
        adapter.poll(now=end)
        adapter.source.close()
        assert len(send.sent) == 2
        wrong = config_body(server.url, source={"username": "monitor", "password": "nope"})
        config = write_config(tmp_path / "c.json", wrong)
        args = ["--config", str(config), "--once", "--state-file", str(tmp_path / "s.json")]
        assert runner.main(SPEC, [*args, "--backfill-hours", "1"]) == 1
    with ElasticsearchFake(api_key="a2V5OnZhbHVl") as server:
        server.index_docs(INDEX, contract_docs(servers=1, steps=2, end=end, iso=True))
        send = Recorder()
        body = config_body(server.url, source={"api_key": "a2V5OnZhbHVl"})
        adapter = loop(body, tmp_path / "k", send)
        adapter.poll(now=end)
        adapter.source.close()
        assert len(send.sent) == 2


def test_once_fails_while_elasticsearch_is_down(tmp_path: Path) -> None:
    body = config_body("http://127.0.0.1:9", source={"request_timeout_s": 2})
    config = write_config(tmp_path / "c.json", body)
    args = ["--config", str(config), "--once", "--state-file", str(tmp_path / "s.json")]
    assert runner.main(SPEC, args) == 1


def test_a_time_in_the_index_own_format_is_read_from_the_sort_value() -> None:
    config = EsAdapterConfig.model_validate(config_body("http://127.0.0.1:9"))
    source = connect(config, AdapterSettings(_env_file=None))
    hit = {"_index": "m", "_id": "1", "_source": {"timestamp": "06/12/2026 04:10"}}
    hit["sort"] = ["2026-12-06T04:10:00.123456789Z"]
    doc = source._doc(hit)
    source.close()
    assert doc.id == "m/1" and doc.time.isoformat() == "2026-12-06T04:10:00.123456+00:00"
    assert doc.body["timestamp"] == doc.time


def test_a_time_outside_years_1_to_9999_is_clamped_not_raised() -> None:
    """0001-01-01T00:00:00+01:00 is in year 0 in UTC (an OverflowError once), a date past
    9999 is past datetime: neither may fail the page; the sort value decides, clamped."""
    config = EsAdapterConfig.model_validate(config_body("http://127.0.0.1:9"))
    source = connect(config, AdapterSettings(_env_file=None))
    early = {"_index": "m", "_id": "1", "_source": {"timestamp": "0001-01-01T00:00:00+01:00"}}
    early["sort"] = ["0000-12-31T23:00:00.000Z"]
    late = {"_index": "m", "_id": "2", "_source": {"timestamp": 253_402_387_200_000}}
    late["sort"] = ["+10000-01-02T00:00:00.000Z"]
    times = [source._doc(hit).time for hit in (early, late)]
    source.close()
    assert times == [
        datetime.min.replace(tzinfo=timezone.utc),
        datetime.max.replace(tzinfo=timezone.utc),
    ]
