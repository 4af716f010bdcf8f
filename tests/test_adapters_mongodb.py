"""adapters/mongodb_adapter.py through pymongo against the MongoDB protocol fake
(tests/protocol_fakes/mongodb.py) on a real socket, and end to end with a daemon process."""

from __future__ import annotations

import itertools
import os
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from bson.datetime_ms import DatetimeMS

import data_contract as dc
from adapters import runner
from adapters.base import Loop
from adapters.config import AdapterSettings
from adapters.mongodb_adapter import SPEC, MongoAdapterConfig
from tests.adapter_helpers import (
    Recorder,
    adapter_loop,
    contract_docs,
    keys,
    now_step,
    one_ahead_then_five,
    quarantined,
    start_adapter,
    write_config,
)
from tests.daemon_helpers import AUTH, KEY, free_port, start_daemon, wait_for
from tests.protocol_fakes.mongodb import MongoFake

DB, COLL = "monitoring", "server_metrics"
YEAR_10000_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z: past what datetime holds
CLAMPED = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)  # DATETIME_CLAMP


@pytest.fixture
def mongo() -> Any:
    with MongoFake() as server:
        yield server


def config_body(uri: str, daemon: str = "http://127.0.0.1:9", **extra: Any) -> dict[str, Any]:
    database = {"uri": uri, "database": DB, "collection": COLL, "timeout_ms": 2000}
    return {"database": database, "tft_daemon": {"url": daemon, "api_key": KEY}} | extra


def loop(uri: str, tmp_path: Path, send: Recorder, batch: int) -> Loop:
    config = MongoAdapterConfig.model_validate(config_body(uri, batch_size=batch))
    return adapter_loop(SPEC, config, tmp_path, send)


def test_pages_through_many_documents_sharing_a_timestamp(mongo: MongoFake, tmp_path: Path) -> None:
    end = now_step()
    docs = contract_docs(servers=700, steps=3, end=end)  # 700 documents per timestamp
    mongo.insert_many(DB, COLL, docs)
    send = Recorder()
    first = loop(mongo.uri, tmp_path, send, batch=300)
    first.poll(now=end + timedelta(minutes=1))
    first.source.close()
    assert len(send.sent) == 2100 and len(set(keys(send.sent))) == 2100
    again = Recorder()
    second = loop(mongo.uri, tmp_path, again, batch=300)  # restarted from the state file
    second.poll(now=end + timedelta(minutes=1))
    second.source.close()
    assert again.sent == []


def test_documents_visible_late_are_sent_once(mongo: MongoFake, tmp_path: Path) -> None:
    end = now_step()
    mongo.insert_many(DB, COLL, contract_docs(servers=3, steps=4, end=end))
    send = Recorder()
    adapter = loop(mongo.uri, tmp_path, send, batch=100)
    adapter.poll(now=end)
    late = contract_docs(servers=1, steps=1, end=end - timedelta(seconds=30))
    late[0]["server_name"] = "late"
    mongo.insert_many(DB, COLL, late, visible=False)
    adapter.poll(now=end)
    assert len(send.sent) == 12
    mongo.release(DB, COLL)
    adapter.poll(now=end)
    adapter.poll(now=end)
    adapter.source.close()
    assert len(send.sent) == 13 and send.sent[-1]["server_name"] == "late"


def test_a_host_ahead_of_the_clock_hides_no_other_host(mongo: MongoFake, tmp_path: Path) -> None:
    """Issue 18: one host 10 min ahead, then five other hosts: all five are delivered, the
    early one is quarantined once (and never sent, even once its time has come)."""
    end = now_step()
    ahead, others = one_ahead_then_five(end)
    mongo.insert_many(DB, COLL, ahead)
    send = Recorder()
    adapter = loop(mongo.uri, tmp_path, send, batch=100)
    first = adapter.poll(now=end)
    mongo.insert_many(DB, COLL, others)
    second = adapter.poll(now=end + timedelta(seconds=10))
    assert adapter.cursor.time is not None and adapter.cursor.time <= end + timedelta(seconds=10)
    later = adapter.poll(now=end + timedelta(minutes=11))  # the early document's time came
    adapter.source.close()
    assert [r["server_name"] for r in send.sent] == [f"host{k}" for k in range(5)]
    assert (first.future, second.future, later.future) == (1, 0, 0)
    [line] = quarantined(tmp_path)
    assert line["kind"] == "future" and line["document"]["server_name"] == "fast-clock"
    assert "600 s ahead" in line["problem"] and "TFT_MAX_CLOCK_SKEW_S" in line["problem"]


def test_a_date_past_year_9999_is_quarantined_and_the_rest_delivered(
    mongo: MongoFake, tmp_path: Path
) -> None:
    """pymongo cannot decode it as a datetime: without DATETIME_AUTO the whole page fails."""
    end = now_step()
    [bad] = contract_docs(servers=1, steps=1, end=end)
    bad |= {"server_name": "y10k", "timestamp": DatetimeMS(YEAR_10000_MS)}
    mongo.insert_many(DB, COLL, [*contract_docs(servers=3, steps=2, end=end), bad])
    send = Recorder()
    adapter = loop(mongo.uri, tmp_path, send, batch=100)
    totals, again = adapter.poll(now=end), adapter.poll(now=end)
    adapter.source.close()
    assert len(send.sent) == 6 and (totals.future, again.future) == (1, 0)
    [line] = quarantined(tmp_path)
    assert line["document"]["server_name"] == "y10k" and "dated 9999-12-31" in line["problem"]


def test_pages_through_dates_past_year_9999(mongo: MongoFake) -> None:
    """The keyset continues after the stored date, not the clamped one (which would read
    the same documents again and again)."""
    end = now_step()
    docs = contract_docs(servers=3, steps=1, end=end)
    far = [doc | {"timestamp": DatetimeMS(YEAR_10000_MS + k)} for k, doc in enumerate(docs)]
    mongo.insert_many(DB, COLL, far)
    source = SPEC.make_source(
        MongoAdapterConfig.model_validate(config_body(mongo.uri)), AdapterSettings(_env_file=None)
    )
    pages = list(itertools.islice(source.pages(end, None, 2), 4))
    source.close()
    assert [len(page) for page in pages] == [2, 1]
    assert {doc.time for page in pages for doc in page} == {CLAMPED}


def test_export_writes_a_contract_parquet(mongo: MongoFake, tmp_path: Path) -> None:
    end = now_step()
    mongo.insert_many(DB, COLL, contract_docs(servers=2, steps=30, end=end))
    config = write_config(tmp_path / "c.json", config_body(mongo.uri))
    out = tmp_path / "fleet.parquet"
    since = (end - timedelta(minutes=50)).isoformat()
    code = runner.main(SPEC, ["--config", str(config), "--export", str(out), "--since", since])
    frame = pd.read_parquet(out)
    assert code == 0 and len(frame) == 2 * 11 and dc.validate_schema(frame) == (True, [])
    assert frame["timestamp"].min() == pd.Timestamp(end - timedelta(minutes=50))


def test_dry_run_prints_records_and_keeps_no_cursor(
    mongo: MongoFake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mongo.insert_many(DB, COLL, contract_docs(servers=2, steps=2, end=now_step()))
    config = write_config(tmp_path / "c.json", config_body(mongo.uri))
    cursor = tmp_path / "cursor.json"
    args = ["--config", str(config), "--once", "--dry-run", "--state-file", str(cursor)]
    assert runner.main(SPEC, [*args, "--backfill-hours", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and '"server_name":"srv000"' in lines[0] and not cursor.exists()


def test_once_fails_while_the_daemon_is_down(mongo: MongoFake, tmp_path: Path) -> None:
    mongo.insert_many(DB, COLL, contract_docs(servers=1, steps=2, end=now_step()))
    url = f"http://127.0.0.1:{free_port()}"
    config = write_config(tmp_path / "c.json", config_body(mongo.uri, daemon=url))
    cursor = tmp_path / "cursor.json"
    args = ["--config", str(config), "--once", "--state-file", str(cursor)]
    assert runner.main(SPEC, [*args, "--backfill-hours", "1"]) == 1 and not cursor.exists()


def test_once_fails_while_mongodb_is_down(tmp_path: Path) -> None:
    uri = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    config = write_config(tmp_path / "c.json", config_body(uri))
    args = ["--config", str(config), "--once", "--state-file", str(tmp_path / "s.json")]
    started = time.monotonic()
    assert runner.main(SPEC, args) == 1
    assert time.monotonic() - started < 30  # the configured 2 s timeout, not pymongo's 30 s


def test_bad_config_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.json", {"database": {"database": DB}})
    assert runner.main(SPEC, ["--config", str(config), "--once"]) == 2


# --- end to end: adapter processes and a daemon process ------------------------------


def health(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/health", timeout=5).json()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kill_9_mid_backlog_then_restart_delivers_every_record_once(
    mongo: MongoFake, tmp_path: Path
) -> None:
    docs = contract_docs(servers=100, steps=280, end=now_step())  # 28,000 records, 23 h
    mongo.insert_many(DB, COLL, docs)
    port, log = free_port(), tmp_path / "daemon.log"
    daemon = start_daemon(port, tmp_path / "state", log)
    url = f"http://127.0.0.1:{port}"
    config = write_config(tmp_path / "c.json", config_body(mongo.uri, daemon=url, batch_size=100))
    cursor, env = tmp_path / "cursor.json", {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = ["--config", str(config), "--daemon", "--interval", "0.5", "--state-file", str(cursor)]
    args += ["--backfill-hours", "30"]
    try:
        wait_for(lambda: health(url)["status"], 90, "daemon", log)
        adapter = start_adapter("mongodb_adapter.py", *args, env=env, log=tmp_path / "a.log")
        wait_for(lambda: health(url)["feed"]["applied"] >= 500, 60, "first records", log)
        adapter.send_signal(signal.SIGKILL)
        adapter.wait(timeout=10)
        kept = health(url)["feed"]["applied"]
        assert kept < len(docs), "the kill came too late to test anything"
        adapter = start_adapter("mongodb_adapter.py", *args, env=env, log=tmp_path / "a.log")
        wait_for(lambda: health(url)["feed"]["received"] >= len(docs), 120, "the rest", log)
        time.sleep(2)  # a few more polls: nothing new may arrive
        adapter.send_signal(signal.SIGTERM)
        assert adapter.wait(timeout=20) == 0
        feed = health(url)
        assert feed["feed"]["applied"] == len(docs) and feed["ticks_held"] == len(docs)
        assert feed["feed"]["rejected"] == 0
        predict = httpx.get(f"{url}/predict", headers=AUTH, timeout=10).json()
        assert set(predict["predictions"]) == {f"srv{s:03d}" for s in range(100)}
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)


@pytest.mark.slow
def test_export_then_train_a_model_on_it(mongo: MongoFake, tmp_path: Path) -> None:
    """The README's workflow: export a fleet's history, train the TFT on it (tiny run)."""
    from tests.test_training import TINY_ARGS
    from training import tft_trainer

    end = now_step()
    mongo.insert_many(DB, COLL, contract_docs(servers=4, steps=2 * 288, end=end))
    config = write_config(tmp_path / "c.json", config_body(mongo.uri))
    out = tmp_path / "fleet.parquet"
    since = (end - timedelta(days=2)).isoformat()
    assert runner.main(SPEC, ["--config", str(config), "--export", str(out), "--since", since]) == 0
    models = tmp_path / "models"
    assert tft_trainer.main(["--data", str(out), "--out", str(models), *TINY_ARGS]) in (0, None)
    assert any(models.rglob("config.json")), "no model artifact was written"


def test_a_corrupt_state_file_exits_2_naming_it(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.json", config_body("mongodb://127.0.0.1:9"))
    cursor = tmp_path / "cursor.json"
    cursor.write_text("{not json")
    assert runner.main(SPEC, ["--config", str(config), "--once", "--state-file", str(cursor)]) == 2
