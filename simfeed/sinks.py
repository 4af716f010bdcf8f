"""Database sinks: the generator writes its records into MongoDB or Elasticsearch instead
of POSTing them to /feed, in the shape the adapters' example configs read
(adapters/mongodb_adapter_config.json, adapters/elasticsearch_adapter_config.json).
That makes the production path (database -> adapter -> daemon) runnable as a demo.

Both sinks reuse FeedSender's buffer, order and backoff; only the write differs. Writes
are idempotent: a document's id is its server and timestamp, so a retried batch does not
duplicate anything.
- MongoDB: one document per record, `timestamp` a BSON date, and an index on
  (timestamp, _id) for the adapter's paging. A duplicate _id counts as a duplicate.
- Elasticsearch: one document per record, `timestamp` ISO 8601, `server_name` a keyword.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from feedclient.answer import FeedAnswer
from simfeed.sender import FeedSender, Outcome

logger = logging.getLogger(__name__)
DUPLICATE_KEY = 11000  # MongoDB's error code: a retried batch met its own documents
ES_MAPPINGS = {
    "properties": {
        "timestamp": {"type": "date"},
        "server_name": {"type": "keyword"},
        "state": {"type": "keyword"},
    }
}


def open_sink(settings: Any) -> FeedSender | None:
    """The database sink the settings ask for (--to-mongodb, --to-elasticsearch), ready
    to write; None to POST to the daemon."""
    sizes = (settings.batch_size, settings.buffer_records)
    backoff = {"backoff_initial": settings.backoff_initial_s, "backoff_max": settings.backoff_max_s}
    sink: DatabaseSink
    if settings.to_mongodb:
        import pymongo

        timeout_ms = int(settings.request_timeout_s * 1000)
        client = pymongo.MongoClient(
            settings.to_mongodb,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
        )
        collection = client[settings.mongodb_database][settings.mongodb_collection]
        sink = MongoSink(collection, *sizes, **backoff)
    elif settings.to_elasticsearch:
        from elasticsearch import Elasticsearch

        client = Elasticsearch(
            settings.to_elasticsearch, request_timeout=settings.request_timeout_s
        )
        sink = ElasticsearchSink(client, settings.elasticsearch_index, *sizes, **backoff)
    else:
        return None
    sink.prepare()
    return sink


def doc_id(record: dict[str, Any]) -> str:
    return f"{record['server_name']}@{record['timestamp']}"


class DatabaseSink(FeedSender):
    """FeedSender's buffer, order and backoff, writing to a database instead of /feed."""

    def __init__(self, target: str, batch_size: int, max_records: int, **backoff: Any) -> None:
        super().__init__(None, batch_size, max_records, **backoff)  # type: ignore[arg-type]
        self.target = target  # for the log: which database

    def _written(self, answer: FeedAnswer, n: int) -> Outcome:
        if self.stats.failures:
            logger.info("%s reachable again", self.target)
        self.stats.failures, self._next_attempt = 0, 0.0
        self.count(answer, n)
        logger.debug("wrote %d records to %s", n, self.target)
        return Outcome.SENT


class MongoSink(DatabaseSink):
    """Inserts records into a collection (pymongo Collection)."""

    def __init__(self, collection: Any, batch_size: int, max_records: int, **backoff: Any) -> None:
        super().__init__(f"MongoDB {collection.full_name}", batch_size, max_records, **backoff)
        self.collection = collection

    def prepare(self) -> None:
        from pymongo.errors import PyMongoError

        try:
            self.collection.create_index([("timestamp", 1), ("_id", 1)])
        except PyMongoError as error:
            logger.warning("%s: cannot create the index yet (%s)", self.target, error)

    def _post(self, batch: list[dict[str, Any]]) -> Outcome:
        from pymongo.errors import BulkWriteError, PyMongoError

        duplicates = 0
        try:
            self.collection.insert_many([_mongo_doc(r) for r in batch], ordered=False)
        except BulkWriteError as error:
            codes = [e.get("code") for e in error.details.get("writeErrors", [])]
            if any(code != DUPLICATE_KEY for code in codes):
                return self._retry(f"{self.target}: {error}")
            duplicates = len(codes)
        except PyMongoError as error:
            return self._retry(f"{self.target}: {error}")
        answer = FeedAnswer(applied=len(batch) - duplicates, duplicates=duplicates)
        return self._written(answer, len(batch))

    def close(self) -> None:
        self.collection.database.client.close()


class ElasticsearchSink(DatabaseSink):
    """Indexes records into an index (elasticsearch.Elasticsearch client)."""

    def __init__(
        self, client: Any, index: str, batch_size: int, max_records: int, **backoff: Any
    ) -> None:
        super().__init__(f"Elasticsearch index {index}", batch_size, max_records, **backoff)
        self.client, self.index = client, index

    def prepare(self) -> None:
        from elasticsearch import ApiError, TransportError

        try:
            if not self.client.indices.exists(index=self.index):
                self.client.indices.create(index=self.index, mappings=ES_MAPPINGS)
        except (ApiError, TransportError) as error:
            logger.warning("%s: cannot create the index yet (%s)", self.target, error)

    def _post(self, batch: list[dict[str, Any]]) -> Outcome:
        from elasticsearch import ApiError, TransportError

        operations: list[dict[str, Any]] = []
        for record in batch:
            operations += [{"index": {"_index": self.index, "_id": doc_id(record)}}, record]
        try:
            response = self.client.bulk(operations=operations, refresh="false")
        except (ApiError, TransportError) as error:
            return self._retry(f"{self.target}: {error}")
        failed = [i for i in response.get("items", []) if i.get("index", {}).get("error")]
        if failed:
            return self._retry(f"{self.target}: {len(failed)} documents failed: {failed[0]}")
        return self._written(FeedAnswer(applied=len(batch)), len(batch))

    def close(self) -> None:
        self.client.close()


def _mongo_doc(record: dict[str, Any]) -> dict[str, Any]:
    stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    return {**record, "_id": doc_id(record), "timestamp": stamp}
