"""The Elasticsearch protocol fake, exercised through the real elasticsearch-py 8.x client."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from elasticsearch import (
    AuthenticationException,
    BadRequestError,
    ConflictError,
    Elasticsearch,
    NotFoundError,
    helpers,
)

from tests.protocol_fakes import es_search
from tests.protocol_fakes.elasticsearch import ElasticsearchFake

T0 = "2026-12-01T00:00:00.000Z"
T0_MS = 1796083200000
TIME_SORT = {"@timestamp": {"order": "asc", "format": "strict_date_optional_time_nanos"}}


@pytest.fixture
def server() -> Iterator[ElasticsearchFake]:
    with ElasticsearchFake() as fake:
        yield fake


@pytest.fixture
def es(server: ElasticsearchFake) -> Iterator[Elasticsearch]:
    client = Elasticsearch(server.url)
    yield client
    client.close()


def stamp(minute: int, second: int = 0) -> str:
    return f"2026-12-01T{minute // 60:02d}:{minute % 60:02d}:{second:02d}.000Z"


def metric_docs(minutes: int, hosts: int) -> list[dict[str, Any]]:
    """Metricbeat-like documents: nested objects and one literal dotted key."""
    return [
        {
            "@timestamp": stamp(m),
            "host": {"name": f"h{h}"},
            "system.cpu.total.pct": (m + h) / 100,
            "event": {"module": "system" if h % 2 else "linux"},
        }
        for m in range(minutes)
        for h in range(hosts)
    ]


def ids_of(resp: Any) -> list[str]:
    return [hit["_id"] for hit in resp["hits"]["hits"]]


def test_info_reports_version_and_product_header(server: ElasticsearchFake, es: Elasticsearch):
    info = es.info()
    assert es.ping() and info["version"]["number"] == "8.15.0"
    assert info["tagline"] == "You Know, for Search"
    accept = "application/vnd.elasticsearch+json; compatible-with=8"
    with httpx.Client() as raw:
        plain = raw.get(server.url + "/")
        compat = raw.get(server.url + "/", headers={"Accept": accept})
        too_new = raw.get(server.url + "/", headers={"Accept": accept.replace("8", "9")})
    assert plain.headers["X-Elastic-Product"] == "Elasticsearch"
    assert plain.headers["Content-Type"] == "application/json"
    assert compat.headers["Content-Type"].startswith("application/vnd.elasticsearch+json")
    assert too_new.status_code == 400
    assert too_new.json()["error"]["type"] == "media_type_header_exception"


def test_version_9_server_works_with_the_8_client():
    with ElasticsearchFake(version="9.1.0") as fake, Elasticsearch(fake.url) as client:
        assert client.info()["version"]["number"] == "9.1.0"
        client.index(index="m", document={"a": 1}, refresh=True)
        assert client.count(index="m")["count"] == 1


def test_bulk_is_invisible_until_refresh(es: Elasticsearch):
    es.indices.create(index="metrics", mappings={"properties": {"@timestamp": {"type": "date"}}})
    assert es.indices.exists(index="metrics") and not es.indices.exists(index="other")
    ok, errors = helpers.bulk(es, ({"_index": "metrics", "_source": d} for d in metric_docs(5, 4)))
    assert (ok, errors) == (20, [])
    assert es.search(index="metrics")["hits"]["total"]["value"] == 0
    assert es.count(index="metrics")["count"] == 0
    es.indices.refresh(index="metrics")
    assert es.count(index="metrics")["count"] == 20
    es.index(index="metrics", document={"@timestamp": T0})
    assert es.count(index="metrics")["count"] == 20
    es.index(index="metrics", document={"@timestamp": T0}, refresh="wait_for")
    assert es.count(index="metrics")["count"] == 22


def test_bulk_create_conflict_and_single_doc_api(es: Elasticsearch):
    actions = [
        {"_op_type": "create", "_index": "m", "_id": "a", "_source": {"v": 1}},
        {"_op_type": "create", "_index": "m", "_id": "a", "_source": {"v": 2}},
        {"_op_type": "index", "_index": "m", "_id": "b", "_source": {"v": 3}},
    ]
    ok, errors = helpers.bulk(es, actions, raise_on_error=False, refresh=True)
    assert ok == 2 and errors[0]["create"]["status"] == 409
    with pytest.raises(ConflictError):
        es.create(index="m", id="b", document={"v": 4})
    assert es.index(index="m", id="b", document={"v": 5})["result"] == "updated"
    assert es.get(index="m", id="b")["_source"] == {"v": 5}
    assert es.count(index="m")["count"] == 2
    es.delete(index="m", id="a", refresh=True)
    assert es.count(index="m")["count"] == 1


def test_range_term_bool_terms_exists(server: ElasticsearchFake, es: Elasticsearch):
    server.index_docs("metricbeat-a", metric_docs(10, 4))
    server.index_docs("metricbeat-b", [{"@timestamp": T0_MS + 60_000, "host": {"name": "h9"}}])

    def hits(query: dict[str, Any]) -> int:
        return es.count(index="metricbeat-*", query=query)["count"]

    window = {"range": {"@timestamp": {"gte": stamp(1), "lt": stamp(3)}}}
    assert hits(window) == 9  # 2 minutes x 4 hosts + the epoch-millis document
    assert hits({"bool": {"filter": [window, {"term": {"host.name": "h1"}}]}}) == 2
    assert (
        hits({"bool": {"filter": [window], "must_not": [{"terms": {"host.name": ["h1", "h2"]}}]}})
        == 5
    )
    should = [{"term": {"event.module": "system"}}, {"term": {"host.name": "h0"}}]
    assert hits({"bool": {"filter": [window], "should": should, "minimum_should_match": 1}}) == 6
    assert hits({"range": {"system.cpu.total.pct": {"gte": 0.05}}}) == 26
    assert hits({"bool": {"must_not": {"exists": {"field": "event.module"}}}}) == 1
    assert hits({"term": {"host.name.keyword": "h3"}}) == 10
    assert hits({"range": {"@timestamp": {"gte": T0_MS + 60_000, "lte": T0_MS + 60_000}}}) == 5


def test_multi_key_sort_with_missing(server: ElasticsearchFake, es: Elasticsearch):
    docs = [{"n": 2, "s": "b"}, {"n": 1}, {"s": "a"}, {"n": 2, "s": "a"}, {}]
    server.index_docs("m", docs, ids=["n2b", "n1", "sa", "n2a", "none"])
    sort = [
        {"n": {"order": "desc", "missing": "_first"}},
        {"s": {"order": "asc", "missing": "_last"}},
    ]
    resp = es.search(index="m", sort=sort)
    assert ids_of(resp) == ["sa", "none", "n2a", "n2b", "n1"]
    assert resp["hits"]["hits"][1]["sort"] == [9223372036854775807, None]
    assert resp["hits"]["hits"][2]["sort"] == [2, "a"]
    sort = [{"s": {"order": "desc", "missing": "_first"}}, {"n": "asc"}]
    assert ids_of(es.search(index="m", sort=sort)) == ["n1", "none", "n2b", "n2a", "sa"]


def page_through(es: Elasticsearch, size: int, **search: Any) -> list[dict[str, Any]]:
    """Every hit, paging with search_after (and the PIT id each response returns)."""
    seen, after = [], None
    while True:
        extra = {"search_after": after} if after is not None else {}
        resp = es.search(size=size, track_total_hits=False, **search, **extra)
        if "pit" in search:
            search["pit"] = {"id": resp["pit_id"], "keep_alive": "1m"}
        if not resp["hits"]["hits"]:
            return seen
        seen.extend(resp["hits"]["hits"])
        after = resp["hits"]["hits"][-1]["sort"]


def test_search_after_with_pit_over_one_shared_timestamp(
    server: ElasticsearchFake, es: Elasticsearch
):
    server.index_docs("metricbeat-x", [{"@timestamp": T0, "i": i} for i in range(3000)])
    pit = es.open_point_in_time(index="metricbeat-*", keep_alive="1m")["id"]
    query = {"bool": {"filter": [{"range": {"@timestamp": {"gte": T0, "lt": stamp(1)}}}]}}
    hits = page_through(
        es,
        700,
        pit={"id": pit, "keep_alive": "1m"},
        query=query,
        sort=[TIME_SORT, {"_shard_doc": "asc"}],
    )
    assert sorted(h["_source"]["i"] for h in hits) == list(range(3000))
    assert hits[0]["sort"][0] == T0 and isinstance(hits[0]["sort"][1], int)
    es.close_point_in_time(id=pit)
    with pytest.raises(NotFoundError):
        es.close_point_in_time(id=pit)


@pytest.mark.parametrize("unstamped", [[], ["nostamp"]], ids=["sorted-index", "full-scan"])
def test_search_after_with_a_keyword_tie_breaker(
    server: ElasticsearchFake, es: Elasticsearch, unstamped: list[str]
):
    docs = [{"timestamp": T0, "server_name": f"s{i:04d}"} for i in range(3000)]
    docs += [{"server_name": name} for name in unstamped]  # a missing time forces a full scan
    random.Random(1).shuffle(docs)
    server.index_docs("m", docs)
    sort = [{"timestamp": {"order": "asc", "missing": "_last"}}, {"server_name": "asc"}]
    hits = page_through(es, 450, index="m", sort=sort)
    names = [f"s{i:04d}" for i in range(3000)] + unstamped
    assert [h["_source"]["server_name"] for h in hits] == names
    assert hits[0]["sort"] == [T0_MS, "s0000"]


def test_pages_agree_with_a_reference_across_indices(server: ElasticsearchFake, es: Elasticsearch):
    rng = random.Random(7)
    docs = [{"@timestamp": stamp(rng.randrange(30), rng.randrange(3)), "k": i} for i in range(900)]
    for day in range(3):
        server.index_docs(f"metricbeat-{day}", docs[day::3])
    pit = es.open_point_in_time(index="metricbeat-*", keep_alive="1m")["id"]
    for order in ("asc", "desc"):
        query = {"range": {"@timestamp": {"gt": stamp(3), "lte": stamp(20)}}}
        sort = [{"@timestamp": {"order": order}}, {"_shard_doc": order}]
        hits = page_through(es, 37, pit={"id": pit}, query=query, sort=sort)
        want = sorted(d["@timestamp"] for d in docs if stamp(3) < d["@timestamp"] <= stamp(20))
        assert [h["_source"]["@timestamp"] for h in hits] == want[:: 1 if order == "asc" else -1]
        assert len({h["_source"]["k"] for h in hits}) == len(want)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sorted_index_path_matches_the_full_scan(
    server: ElasticsearchFake, es: Elasticsearch, monkeypatch: pytest.MonkeyPatch, order: str
):
    rng = random.Random(3)
    for name in ("metricbeat-1", "metricbeat-2"):
        docs = [{"@timestamp": stamp(rng.randrange(20)), "host": {"name": f"h{rng.randrange(4)}"},
                 "server_name": f"s{rng.randrange(50):02d}"} for _ in range(400)]  # fmt: skip
        server.index_docs(name, docs)
    pit = {"id": es.open_point_in_time(index="metricbeat-*", keep_alive="1m")["id"]}
    window = {"range": {"@timestamp": {"gte": stamp(2), "lt": stamp(17)}}}
    query = {"bool": {"filter": [window], "must_not": [{"term": {"host.name": "h1"}}]}}
    sorts = [
        [{"@timestamp": order}, {"server_name": "desc"}],
        [{"@timestamp": {"order": order, "format": "strict_date_optional_time"}}],
    ]
    for sort in sorts:
        fast = page_through(es, 23, pit=dict(pit), query=query, sort=sort)
        with monkeypatch.context() as patch:
            patch.setattr(es_search._Plan, "_fast", lambda plan, with_after: None)
            scan = page_through(es, 23, pit=dict(pit), query=query, sort=sort)
        assert [(h["_index"], h["_id"]) for h in fast] == [(h["_index"], h["_id"]) for h in scan]
        assert len(fast) == len({(h["_index"], h["_id"]) for h in fast}) > 300


def test_pit_sees_only_what_was_visible_when_opened(server: ElasticsearchFake, es: Elasticsearch):
    server.index_docs("m", [{"@timestamp": T0, "v": 1}], ids=["old"])
    server.index_docs("m", [{"@timestamp": T0, "v": 0}], ids=["hidden"], visible=False)
    pit = es.open_point_in_time(index="m", keep_alive="1m")["id"]
    server.refresh()
    server.index_docs(
        "m", [{"@timestamp": T0, "v": 2}, {"@timestamp": T0, "v": 3}], ids=["old", "new"]
    )
    in_pit = es.search(pit={"id": pit}, sort=[{"@timestamp": "asc"}])
    assert [h["_source"]["v"] for h in in_pit["hits"]["hits"]] == [1]
    assert in_pit["hits"]["hits"][0]["sort"] == [T0_MS, 1]  # implicit _shard_doc tie-breaker
    assert sorted(h["_source"]["v"] for h in es.search(index="m")["hits"]["hits"]) == [0, 2, 3]
    assert server.count("m") == 3
    server.expire_pits()
    with pytest.raises(NotFoundError):
        es.search(pit={"id": pit})


def test_date_formats_and_precision(server: ElasticsearchFake, es: Elasticsearch):
    server.index_docs("m", [{"t": "2026-12-01T01:00:00.123456789+01:00"}, {"t": T0_MS + 5}])
    hits = es.search(index="m", sort=[{"t": "asc"}])["hits"]["hits"]
    assert [h["sort"] for h in hits] == [[T0_MS + 5], [T0_MS + 123]]
    hits = es.search(index="m", sort=[{"t": {"format": "strict_date_optional_time_nanos"}}])[
        "hits"
    ]["hits"]
    assert [h["sort"] for h in hits] == [["2026-12-01T00:00:00.005Z"], ["2026-12-01T00:00:00.123Z"]]
    after = es.search(index="m", sort=[{"t": "asc"}], search_after=["2026-12-01T00:00:00.005Z"])
    assert [h["_source"]["t"] for h in after["hits"]["hits"]] == [
        "2026-12-01T01:00:00.123456789+01:00"
    ]


def test_errors_are_shaped_like_elasticsearch(server: ElasticsearchFake, es: Elasticsearch):
    server.index_docs("m", [{"a": 1}])
    with pytest.raises(BadRequestError) as bad:
        es.search(index="m", query={"match": {"a": 1}})
    assert bad.value.error == "parsing_exception" and "[match]" in str(bad.value)
    with pytest.raises(NotFoundError) as missing:
        es.search(index="nope", query={"match_all": {}})
    assert missing.value.error == "index_not_found_exception"
    assert es.search(index="nope-*")["hits"]["hits"] == []
    assert es.search(index="nope", ignore_unavailable=True)["hits"]["hits"] == []
    with pytest.raises(BadRequestError):
        es.search(index="m", sort=[{"a": "asc"}], search_after=[1, 2])
    with pytest.raises(BadRequestError):
        es.search(index="m", sort=[{"_shard_doc": "asc"}])
    with pytest.raises(NotFoundError) as no_pit:
        es.search(pit={"id": "unknown"})
    assert no_pit.value.error == "search_context_missing_exception"


@pytest.mark.parametrize(
    ("options", "client_auth"),
    [
        ({"api_key": "c2VjcmV0"}, {"api_key": "c2VjcmV0"}),
        ({"api_key": ("id", "key")}, {"api_key": ("id", "key")}),
        ({"basic_auth": ("elastic", "pw")}, {"basic_auth": ("elastic", "pw")}),
    ],
)
def test_authentication(options: dict[str, Any], client_auth: dict[str, Any]):
    with ElasticsearchFake(**options) as fake:
        with Elasticsearch(fake.url) as anonymous, pytest.raises(AuthenticationException):
            anonymous.info()
        with (
            Elasticsearch(fake.url, basic_auth=("x", "y")) as wrong,
            pytest.raises(AuthenticationException),
        ):
            wrong.info()
        with Elasticsearch(fake.url, **client_auth) as client:
            assert client.info()["tagline"] == "You Know, for Search"


def test_stop_is_prompt_with_an_open_keep_alive_connection():
    fake = ElasticsearchFake().start()
    url = fake.url
    with Elasticsearch(url) as client:
        client.info()  # leaves a pooled keep-alive connection open
        began = time.monotonic()
        fake.stop()
        assert time.monotonic() - began < 3.0
    with pytest.raises(httpx.ConnectError), httpx.Client() as raw:
        raw.get(url, timeout=1)
