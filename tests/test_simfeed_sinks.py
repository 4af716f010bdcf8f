"""simfeed/sinks.py: the generator's MongoDB and Elasticsearch sinks, against the protocol
fakes, in the shape the adapters' example configs read."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from adapters.config import AdapterSettings
from adapters.elasticsearch_adapter import SPEC as ES_SPEC
from adapters.elasticsearch_adapter import EsAdapterConfig
from adapters.mongodb_adapter import SPEC as MONGO_SPEC
from adapters.mongodb_adapter import MongoAdapterConfig
from simfeed.settings import Settings
from simfeed.sinks import open_sink
from tests.adapter_helpers import contract_docs, keys, now_step
from tests.protocol_fakes.elasticsearch import ElasticsearchFake
from tests.protocol_fakes.mongodb import MongoFake

ROOT = Path(__file__).resolve().parents[1]


def records(n_servers: int = 3, steps: int = 4) -> list[dict[str, Any]]:
    return contract_docs(n_servers, steps, now_step(), iso=True)


def test_mongodb_sink_writes_what_the_mongodb_adapter_reads() -> None:
    with MongoFake() as server:
        sink = open_sink(Settings(_env_file=None, to_mongodb=server.uri, backoff_max_s=1))
        assert sink is not None
        sent = records()
        sink.enqueue(sent)
        assert sink.flush() and sink.stats.applied == 12
        sink.enqueue(sent[:5])  # a retried batch: nothing twice
        assert sink.flush() and sink.stats.duplicates == 5
        sink.close()
        stored = server.docs("monitoring", "server_metrics")
        assert len(stored) == 12
        example = json.loads((ROOT / "adapters/mongodb_adapter_config.json").read_text())
        example["database"]["uri"] = server.uri
        config = MongoAdapterConfig.model_validate(example)
        mapped = MONGO_SPEC.make_mapper(config)(stored, final=True, now=now_step())
        assert not mapped.failures and sorted(keys(mapped.records)) == sorted(keys(sent))


def test_mongodb_sink_keeps_records_while_mongodb_is_down() -> None:
    uri = "mongodb://127.0.0.1:9/?directConnection=true"
    settings = Settings(_env_file=None, to_mongodb=uri, backoff_max_s=1, request_timeout_s=0.3)
    sink = open_sink(settings)
    assert sink is not None
    sink.enqueue(records(1, 2))
    assert not sink.flush() and sink.pending == 2 and sink.stats.failures == 1
    sink.close()


def test_settings_refuse_two_sinks_and_need_no_key_with_one() -> None:
    settings = Settings(_env_file=None, to_mongodb="mongodb://x")
    assert settings.api_key is None
    try:
        Settings(_env_file=None, to_mongodb="mongodb://x", to_elasticsearch="http://y")
    except ValueError as error:
        assert "choose one sink" in str(error)
    else:
        raise AssertionError("two sinks were accepted")


def test_elasticsearch_sink_writes_what_the_elasticsearch_adapter_reads() -> None:
    with ElasticsearchFake(auto_refresh=True) as server:
        sink = open_sink(Settings(_env_file=None, to_elasticsearch=server.url))
        assert sink is not None
        sent = records()
        sink.enqueue(sent)
        sink.enqueue(sent[:5])  # resent: the same ids, indexed over themselves
        assert sink.flush() and sink.stats.applied == 17
        sink.close()
        assert server.count("server-metrics") == 12
        example = json.loads((ROOT / "adapters/elasticsearch_adapter_config.json").read_text())
        example["elasticsearch"]["hosts"] = [server.url]
        config = EsAdapterConfig.model_validate(example)
        source = ES_SPEC.make_source(config, AdapterSettings(_env_file=None))
        docs = [
            d for page in source.pages(now_step() - timedelta(hours=1), None, 100) for d in page
        ]
        source.close()
        mapped = ES_SPEC.make_mapper(config)([d.body for d in docs], final=True, now=now_step())
        assert not mapped.failures and sorted(keys(mapped.records)) == sorted(keys(sent))
