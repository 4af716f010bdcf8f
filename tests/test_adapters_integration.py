"""The adapters against real servers, where MONGODB_URI or ELASTICSEARCH_URL is set
(e.g. `docker compose --profile mongodb up mongodb`, then
MONGODB_URI=mongodb://localhost:27017 make test); skipped otherwise. Each test writes
into a collection or index of its own and removes it."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.elasticsearch_adapter import SPEC as ES_SPEC
from adapters.elasticsearch_adapter import EsAdapterConfig
from adapters.mongodb_adapter import SPEC as MONGO_SPEC
from adapters.mongodb_adapter import MongoAdapterConfig
from tests.adapter_helpers import Recorder, adapter_loop, contract_docs, now_step

MONGODB_URI = os.environ.get("MONGODB_URI")
ELASTICSEARCH_URL = os.environ.get("ELASTICSEARCH_URL")


def run_twice(spec: Any, config: Any, tmp_path: Path) -> tuple[Recorder, Recorder]:
    """A poll, then a poll of a restarted adapter: what each sent."""
    sends = (Recorder(), Recorder())
    for send in sends:
        loop = adapter_loop(spec, config, tmp_path, send, backfill=timedelta(hours=2))
        loop.poll(now=now_step() + timedelta(minutes=1))
        loop.source.close()
    return sends


@pytest.mark.skipif(not MONGODB_URI, reason="MONGODB_URI is not set (no real MongoDB)")
def test_real_mongodb(tmp_path: Path) -> None:
    import pymongo

    name = f"tft_test_{uuid.uuid4().hex[:8]}"
    client: Any = pymongo.MongoClient(MONGODB_URI)
    try:
        client["tft_test"][name].insert_many(contract_docs(300, 3, now_step()))
        database = {"uri": MONGODB_URI, "database": "tft_test", "collection": name}
        config = MongoAdapterConfig.model_validate({"database": database, "batch_size": 200})
        first, again = run_twice(MONGO_SPEC, config, tmp_path)
    finally:
        client["tft_test"].drop_collection(name)
        client.close()
    assert len(first.sent) == 900 and again.sent == []


@pytest.mark.skipif(not ELASTICSEARCH_URL, reason="ELASTICSEARCH_URL is not set (no real ES)")
def test_real_elasticsearch(tmp_path: Path) -> None:
    from elasticsearch import Elasticsearch, helpers

    index = f"tft-test-{uuid.uuid4().hex[:8]}"
    client = Elasticsearch(ELASTICSEARCH_URL)
    try:
        docs = contract_docs(300, 3, now_step(), iso=True)
        helpers.bulk(client, ({"_index": index, "_source": d} for d in docs), refresh=True)
        source = {"hosts": [ELASTICSEARCH_URL], "index_pattern": index, "time_field": "timestamp"}
        config = EsAdapterConfig.model_validate({"elasticsearch": source, "batch_size": 200})
        first, again = run_twice(ES_SPEC, config, tmp_path)
    finally:
        client.options(ignore_status=404).indices.delete(index=index)
        client.close()
    assert len(first.sent) == 900 and again.sent == []
