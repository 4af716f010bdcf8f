"""The MongoDB protocol fake, exercised through real pymongo over TCP."""

from __future__ import annotations

import datetime
import logging
import os
import random
import resource
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import bson
import pymongo
import pytest
from bson.int64 import Int64
from bson.objectid import ObjectId
from pymongo import monitoring

from tests.protocol_fakes.mongodb import MongoFake

logger = logging.getLogger(__name__)

T0 = datetime.datetime(2025, 1, 6)
KEYSET = [("timestamp", 1), ("_id", 1)]


class Recorder(monitoring.CommandListener):
    """Records command names and successful replies seen by one client."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.replies: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.replies.append(dict(event.reply))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def server() -> Iterator[MongoFake]:
    """A running fake, stopped after the test."""
    with MongoFake() as fake:
        yield fake


@pytest.fixture
def recorder() -> Recorder:
    """The command listener of the client fixture."""
    return Recorder()


@pytest.fixture
def client(server: MongoFake, recorder: Recorder) -> Iterator[pymongo.MongoClient]:
    """A pymongo client of the server fixture (closed before the server stops)."""
    mongo = pymongo.MongoClient(
        server.uri, serverSelectionTimeoutMS=5000, event_listeners=[recorder]
    )
    yield mongo
    mongo.close()


def minutes(n: int) -> datetime.datetime:
    """T0 plus n minutes."""
    return T0 + datetime.timedelta(minutes=n)


def keyset_pages(coll: Any, start: datetime.datetime, size: int) -> Iterator[list[dict]]:
    """Pages of the adapter's keyset query: $gte start first, then the $or tie-breaker."""
    query: dict[str, Any] = {"timestamp": {"$gte": start}}
    while page := list(coll.find(query).sort(KEYSET).limit(size)):
        yield page
        t, oid = page[-1]["timestamp"], page[-1]["_id"]
        query = {"$or": [{"timestamp": {"$gt": t}}, {"timestamp": t, "_id": {"$gt": oid}}]}


def test_insert_then_find_round_trips(server: MongoFake, client: pymongo.MongoClient) -> None:
    coll = client.db.metrics
    docs = [{"timestamp": minutes(i), "server_name": f"s{i % 3}", "cpu": i / 2} for i in range(5)]
    coll.insert_many(docs)
    coll.insert_one({"timestamp": minutes(9), "nested": {"a": [1, 2]}})
    found = list(coll.find({}))
    assert found == docs + [found[-1]]
    assert found[-1]["nested"] == {"a": [1, 2]}
    assert server.count("db", "metrics") == 6
    assert server.docs("db", "metrics") == found


def test_sort_limit_and_batch_size_across_get_more(
    server: MongoFake, client: pymongo.MongoClient, recorder: Recorder
) -> None:
    docs = [{"_id": i, "timestamp": minutes(999 - i)} for i in range(1000)]
    server.insert_many("db", "m", docs)
    found = list(client.db.m.find({}).sort(KEYSET).skip(20).limit(730).batch_size(50))
    assert [d["_id"] for d in found] == list(range(979, 249, -1))
    assert recorder.names.count("getMore") == 14
    assert server.commands.cursors == {}


def test_first_batch_defaults_to_101(client: pymongo.MongoClient, recorder: Recorder) -> None:
    client.db.m.insert_many([{"timestamp": minutes(i)} for i in range(300)])
    assert len(list(client.db.m.find({"timestamp": {"$gte": T0}}).sort(KEYSET))) == 300
    batches = [r["cursor"] for r in recorder.replies if "cursor" in r]
    assert [len(c.get("firstBatch", c.get("nextBatch"))) for c in batches] == [101, 199]


def test_keyset_pages_through_3000_shared_timestamps(
    server: MongoFake, client: pymongo.MongoClient
) -> None:
    docs = [{"timestamp": minutes(5), "i": i} for i in range(3000)]
    docs += [{"timestamp": minutes(m), "i": 3000 + m} for m in (1, 2, 8, 9)]
    random.Random(1).shuffle(docs)
    server.insert_many("db", "m", docs)
    pages = list(keyset_pages(client.db.m, T0, 250))
    seen = [(d["timestamp"], d["_id"]) for page in pages for d in page]
    assert len(seen) == len(set(seen)) == 3004
    assert seen == sorted(seen)
    assert [len(p) for p in pages][:-1] == [250] * 12
    assert server.stats == {"fast": len(pages) + 1}


def random_docs(seed: int, n: int) -> list[dict[str, Any]]:
    """n documents over 30 shared minutes, plus one without and one with a string timestamp."""
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = [
        {"_id": ObjectId(rng.randbytes(12)), "timestamp": minutes(rng.randrange(30)), "v": i}
        for i in range(n)
    ]
    docs += [{"_id": ObjectId(rng.randbytes(12)), "v": -1}, {"timestamp": "not a date", "v": -2}]
    rng.shuffle(docs)
    return docs


def agreement_queries(docs: list[dict[str, Any]]) -> list[tuple[dict, list, int, int]]:
    """(filter, sort, skip, limit) shapes the fast path serves."""
    mid = next(d for d in docs if isinstance(d.get("timestamp"), datetime.datetime))
    t, oid = mid["timestamp"], mid["_id"]
    tie = {"$or": [{"timestamp": {"$gt": t}}, {"timestamp": t, "_id": {"$gt": oid}}]}
    flipped = {"$or": [{"timestamp": t, "_id": {"$gt": ObjectId(b"\x80" * 12)}}, tie["$or"][0]]}
    desc = [("timestamp", -1), ("_id", -1)]
    return [
        ({"timestamp": {"$gte": minutes(3)}}, KEYSET, 0, 0),
        ({"timestamp": {"$gte": minutes(3), "$lt": minutes(17)}}, KEYSET, 0, 50),
        ({"timestamp": {"$gt": minutes(3), "$lte": minutes(17)}}, desc, 7, 40),
        ({"timestamp": minutes(12)}, KEYSET, 2, 0),
        (tie, KEYSET, 0, 60),
        (flipped, KEYSET, 0, 0),
        ({**tie, "timestamp": {"$lt": minutes(25)}}, KEYSET, 0, 0),
        ({"$and": [tie, {"timestamp": {"$lte": minutes(20)}}]}, KEYSET, 5, 30),
        (
            {"$and": [{"timestamp": {"$gte": minutes(3)}}, {"timestamp": {"$lt": minutes(9)}}]},
            KEYSET,
            0,
            0,
        ),
        ({"timestamp": {"$gte": minutes(40)}}, KEYSET, 0, 0),
    ]


def test_fast_path_agrees_with_mongomock() -> None:
    docs = random_docs(seed=7, n=400)
    with MongoFake() as fast, MongoFake(fast_path=False) as slow:
        fast.insert_many("db", "m", docs)
        slow.insert_many("db", "m", fast.docs("db", "m"))
        clients = [pymongo.MongoClient(s.uri, serverSelectionTimeoutMS=5000) for s in (fast, slow)]
        try:
            for flt, sort, skip, limit in agreement_queries(docs):
                a, b = (list(c.db.m.find(flt).sort(sort).skip(skip).limit(limit)) for c in clients)
                assert a == b, flt
                counts = [c.db.m.count_documents(flt) for c in clients]
                assert counts[0] == counts[1] >= len(b) + skip * (len(b) > 0), flt
        finally:
            for c in clients:
                c.close()
        assert fast.stats == {"fast": 10} and slow.stats == {"mongomock": 10}


def test_sorted_field_is_configurable() -> None:
    with MongoFake(sorted_field="time") as server:
        server.insert_many("db", "m", [{"time": minutes(i % 10), "i": i} for i in range(100)])
        with pymongo.MongoClient(server.uri, tz_aware=True) as client:
            query = {"$and": [{"time": {"$gte": minutes(2)}}, {"time": {"$lt": minutes(4)}}]}
            found = list(client.db.m.find(query).sort([("time", 1), ("_id", 1)]).batch_size(7))
        assert [d["i"] % 10 for d in found] == [2] * 10 + [3] * 10
        assert found[0]["time"].tzinfo is not None
        assert server.stats == {"fast": 1}


def test_array_values_in_the_sorted_field_fall_back_to_mongomock(
    server: MongoFake, client: pymongo.MongoClient
) -> None:
    server.insert_many("db", "m", [{"_id": 1, "timestamp": minutes(1)}])
    server.insert_many("db", "m", [{"_id": 2, "timestamp": [minutes(0), minutes(9)]}])
    found = list(client.db.m.find({"timestamp": {"$gte": minutes(5)}}).sort(KEYSET))
    assert [d["_id"] for d in found] == [2]
    assert server.stats == {"mongomock": 1}


def test_invisible_docs_appear_after_release(
    server: MongoFake, client: pymongo.MongoClient
) -> None:
    server.insert_many("db", "m", [{"timestamp": minutes(i), "i": i} for i in range(10)])
    server.insert_many("db", "m", [{"timestamp": minutes(4), "i": 99}], visible=False)
    assert [d["i"] for p in keyset_pages(client.db.m, T0, 3) for d in p] == list(range(10))
    assert server.count("db", "m") == 10
    assert server.release("db", "m") == 1
    late = list(client.db.m.find({"timestamp": {"$gte": minutes(4), "$lt": minutes(5)}}))
    assert sorted(d["i"] for d in late) == [4, 99]
    assert client.db.m.count_documents({}) == 11


def test_hold_delays_wire_inserts(server: MongoFake, client: pymongo.MongoClient) -> None:
    server.hold("db", "m")
    client.db.m.insert_one({"timestamp": minutes(1)})
    assert client.db.m.count_documents({}) == 0
    assert server.release("db", "m") == 1
    client.db.m.insert_one({"timestamp": minutes(2)})
    assert client.db.m.count_documents({"timestamp": {"$gte": T0}}) == 2


def test_count_documents_and_estimates(server: MongoFake, client: pymongo.MongoClient) -> None:
    server.insert_many("db", "m", [{"timestamp": minutes(i), "s": i % 4} for i in range(100)])
    coll = client.db.m
    assert coll.count_documents({}) == coll.estimated_document_count() == 100
    assert coll.count_documents({"timestamp": {"$gte": minutes(90)}}) == 10
    assert coll.count_documents({"timestamp": {"$gte": minutes(90)}}, skip=3, limit=5) == 5
    assert coll.count_documents({"s": 1}) == 25
    assert coll.count_documents({"s": 9}) == 0
    assert client.db.missing.count_documents({}) == 0


def test_projection_delete_drop_and_catalog(client: pymongo.MongoClient) -> None:
    coll = client.db.m
    coll.insert_many([{"timestamp": minutes(i), "s": i % 2, "v": i} for i in range(10)])
    assert list(coll.find({"v": {"$lt": 2}}, {"_id": 0, "v": 1})) == [{"v": 0}, {"v": 1}]
    assert coll.create_index([("timestamp", 1), ("_id", 1)]) == "timestamp_1__id_1"
    assert "timestamp_1__id_1" in coll.index_information()
    assert coll.delete_many({"s": 1}).deleted_count == 5
    assert coll.delete_one({"s": 0}).deleted_count == 1
    assert sorted(d["v"] for d in coll.find({"timestamp": {"$gte": T0}})) == [2, 4, 6, 8]
    assert client.db.list_collection_names() == ["m"]
    coll.drop()
    assert client.db.list_collection_names() == []
    coll.drop()  # dropping a missing collection is not an error


def test_duplicate_ids_are_write_errors(client: pymongo.MongoClient) -> None:
    client.db.m.insert_one({"_id": 1})
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        client.db.m.insert_one({"_id": 1})
    with pytest.raises(pymongo.errors.BulkWriteError) as info:
        client.db.m.insert_many([{"_id": 2}, {"_id": 1}, {"_id": 3}])
    assert info.value.details["nInserted"] == 1
    assert client.db.m.count_documents({}) == 2


def test_replies_stay_under_16_mib(
    server: MongoFake, client: pymongo.MongoClient, recorder: Recorder
) -> None:
    blob = b"x" * (3 * 1024 * 1024)
    server.insert_many("db", "m", [{"timestamp": minutes(i), "blob": blob} for i in range(12)])
    found = list(client.db.m.find({"timestamp": {"$gte": T0}}).sort(KEYSET))
    assert [d["timestamp"] for d in found] == [minutes(i) for i in range(12)]
    batches = [r["cursor"] for r in recorder.replies if "cursor" in r]
    assert [len(c.get("firstBatch", c.get("nextBatch"))) for c in batches] == [5, 5, 2]


def test_closing_a_cursor_kills_it(server: MongoFake, client: pymongo.MongoClient) -> None:
    server.insert_many("db", "m", [{"timestamp": minutes(i)} for i in range(50)])
    cursor = client.db.m.find({}).batch_size(10)
    next(cursor)
    assert len(server.commands.cursors) == 1
    cursor.close()
    assert server.commands.cursors == {}


def test_errors_are_replies_not_hangs(client: pymongo.MongoClient) -> None:
    with pytest.raises(pymongo.errors.OperationFailure) as info:
        client.db.command("frobnicate")
    assert info.value.code == 59 and "frobnicate" in str(info.value)
    with pytest.raises(pymongo.errors.OperationFailure) as info:
        client.db.command("getMore", Int64(12345), collection="m")
    assert info.value.code == 43
    client.db.m.insert_one({"x": 1})
    with pytest.raises(pymongo.errors.OperationFailure):
        list(client.db.m.find({"$bogus": 1}))
    assert client.admin.command("ping") == {"ok": 1.0}


def raw_exchange(server: MongoFake, message: bytes) -> bytes:
    """Send bytes on a fresh socket; everything the server sends back before closing."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(message)
        sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(65536), b""))


def test_legacy_op_query_handshake(server: MongoFake) -> None:
    query = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1)
    query += bson.encode({"isMaster": 1, "helloOk": True})
    reply = raw_exchange(server, struct.pack("<iiii", 16 + len(query), 7, 0, 2004) + query)
    length, _, response_to, opcode = struct.unpack_from("<iiii", reply)
    assert (length, response_to, opcode) == (len(reply), 7, 1)
    assert struct.unpack_from("<iqii", reply, 16) == (0, 0, 0, 1)
    hello = bson.decode(reply[36:])
    assert hello["ismaster"] and hello["maxWireVersion"] >= 9


def test_garbage_ends_only_its_connection(server: MongoFake, client: pymongo.MongoClient) -> None:
    assert raw_exchange(server, struct.pack("<iiii", 40, 1, 0, 2013) + b"\xff" * 24) == b""
    assert raw_exchange(server, struct.pack("<iiii", 20, 1, 0, 9999) + b"\x00" * 4) == b""
    assert client.admin.command("ping") == {"ok": 1.0}


def test_stop_is_prompt_with_open_connections() -> None:
    server = MongoFake().start()
    client = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=300)
    try:
        server.insert_many("db", "m", [{"timestamp": minutes(i)} for i in range(500)])
        cursor = client.db.m.find({}).batch_size(10)
        next(cursor)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
        with pytest.raises(pymongo.errors.PyMongoError):
            client.admin.command("ping")
    finally:
        client.close()
    server.stop()  # a second stop is a no-op


@pytest.mark.slow
def test_paging_throughput(server: MongoFake) -> None:
    """Pages of 5,000 through 100 servers x N minutes; MONGO_FAKE_BENCH_MINUTES sets N."""
    n_minutes = int(os.environ.get("MONGO_FAKE_BENCH_MINUTES", "1000"))
    rng, loaded = random.Random(0), time.perf_counter()
    fields = [f"metric_{k:02d}" for k in range(16)]
    for m0 in range(0, n_minutes, 100):
        batch = [
            {"timestamp": minutes(m), "server_name": f"s{k:03d}", "state": "healthy"}
            | {f: rng.random() * 100 for f in fields}
            for m in range(m0, min(n_minutes, m0 + 100))
            for k in range(100)
        ]
        server.insert_many("db", "metrics", batch)
    with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000) as client:
        started = time.perf_counter()
        total = sum(len(page) for page in keyset_pages(client.db.metrics, T0, 5000))
        elapsed = time.perf_counter() - started
    assert total == 100 * n_minutes
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    logger.info(
        "paged %d docs in pages of 5000 in %.2f s: %.0f docs/s", total, elapsed, total / elapsed
    )
    logger.info("load %.1f s, peak RSS of the test process %.2f GB", started - loaded, peak_gb)
