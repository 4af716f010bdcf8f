"""Elasticsearch adapter: metrics documents from an index pattern to the TFT daemon's /feed.

    cd adapters
    python elasticsearch_adapter.py --daemon --config elasticsearch_adapter_config.json
    python elasticsearch_adapter.py --daemon --config elasticsearch_metricbeat_config.json

Each poll opens a point in time on the index pattern and pages through it sorted on the
time field and _shard_doc with search_after, so documents sharing a timestamp are neither
skipped nor repeated. Documents in the contract's shape pass through (time_field becomes
timestamp); a "mapping" maps other shapes; a "metricbeat" section joins Metricbeat's
system-module documents per host and period (adapters/metricbeat.py).

The client is elasticsearch-py 8.x, which talks to 8.x and 9.x servers (a 9.x server
accepts the 8.x client's compatible-with=8 requests; a 9.x client is refused by 8.x).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError
from elasticsearch.serializer import OrjsonSerializer
from pydantic import BaseModel, ConfigDict, Field

from adapters.base import Doc, Mapped, Mapper, SourceUnavailable, plain_mapper
from adapters.config import AdapterConfig, AdapterSettings
from adapters.mapping import MappingError, get_path, mapping_from_config, parse_time
from adapters.metricbeat import join
from adapters.runner import AdapterSpec
from adapters.runner import main as run_adapter


class EsConnection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: list[str] = Field(default_factory=lambda: ["http://localhost:9200"])
    index_pattern: str
    time_field: str = "@timestamp"
    username: str | None = None
    password: str | None = None  # or TFT_ELASTICSEARCH_PASSWORD
    api_key: str | None = None  # or TFT_ELASTICSEARCH_API_KEY
    verify_certs: bool = True
    ca_certs: Path | None = None
    request_timeout_s: float = Field(default=30.0, gt=0)
    keep_alive: str = "2m"  # of the point in time between pages
    filter: list[dict[str, Any]] = Field(default_factory=list)  # extra query clauses


class MetricbeatJoin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period_s: float = Field(default=10.0, gt=0)  # Metricbeat's period
    join_wait_s: float = Field(default=30.0, ge=0)  # how long a period may still get docs


class EsAdapterConfig(AdapterConfig):
    elasticsearch: EsConnection
    metricbeat: MetricbeatJoin | None = None


class EsSource:
    """pages() over an index pattern, in (time, _shard_doc) order inside a point in time."""

    def __init__(self, *, client: Elasticsearch, connection: EsConnection) -> None:
        self.client, self.conn = client, connection

    def pages(self, start: datetime, until: datetime | None, size: int) -> Iterator[list[Doc]]:
        pit = self._call(
            self.client.open_point_in_time,
            index=self.conn.index_pattern,
            keep_alive=self.conn.keep_alive,
        )["id"]
        try:
            after = None
            while True:
                response = self._call(
                    self.client.search, **self._request(pit, start, until, size, after)
                )
                pit, hits = response.get("pit_id", pit), response["hits"]["hits"]
                if not hits:
                    return
                yield [self._doc(hit) for hit in hits]
                if len(hits) < size:
                    return
                after = hits[-1]["sort"]
        finally:
            self._close(pit)

    def _request(
        self, pit: str, start: datetime, until: datetime | None, size: int, after: list[Any] | None
    ) -> dict[str, Any]:
        bounds = {"gte": start.isoformat()} | ({"lt": until.isoformat()} if until else {})
        t = self.conn.time_field
        request: dict[str, Any] = {
            "pit": {"id": pit, "keep_alive": self.conn.keep_alive},
            "query": {"bool": {"filter": [{"range": {t: bounds}}, *self.conn.filter]}},
            "sort": [
                {t: {"order": "asc", "format": "strict_date_optional_time_nanos"}},
                {"_shard_doc": "asc"},
            ],
            "size": size,
            "track_total_hits": False,
        }
        return request | ({"search_after": after} if after else {})

    def _doc(self, hit: dict[str, Any]) -> Doc:
        body, field = hit.get("_source") or {}, self.conn.time_field
        try:
            moment = parse_time(get_path(body, field), field)
        except MappingError:  # a date format of the index's own: the sort value is ISO
            moment = _sort_time(hit["sort"][0], field)
        if field in body:
            body[field] = moment  # parsed once: the mapping takes the datetime
        return Doc(f"{hit.get('_index')}/{hit['_id']}", moment, body)

    def _call(self, method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except (ApiError, TransportError) as error:
            raise SourceUnavailable(f"Elasticsearch: {error}") from error

    def _close(self, pit: str) -> None:
        try:
            self.client.close_point_in_time(id=pit)
        except (ApiError, TransportError):
            pass  # it expires after keep_alive anyway

    def close(self) -> None:
        self.client.close()


def connect(config: EsAdapterConfig, settings: AdapterSettings) -> EsSource:
    conn = config.elasticsearch
    password = conn.password or _secret(settings.tft_elasticsearch_password)
    api_key = conn.api_key or _secret(settings.tft_elasticsearch_api_key)
    options: dict[str, Any] = {
        "serializer": OrjsonSerializer(),  # 2-3x faster than json for the hits
        "request_timeout": conn.request_timeout_s,
        "verify_certs": conn.verify_certs,
    }
    if conn.ca_certs:
        options["ca_certs"] = str(conn.ca_certs)
    if api_key:
        options["api_key"] = api_key
    elif conn.username:
        options["basic_auth"] = (conn.username, password or "")
    return EsSource(client=Elasticsearch(conn.hosts, **options), connection=conn)


def _sort_time(value: Any, field: str) -> datetime:
    """The time of a sort value; outside datetime's years 1..9999 (Elasticsearch writes
    +10000-... or -0001-...), clamped to them like pymongo's DATETIME_CLAMP: such a document
    is then dated past the clock (and quarantined) or before every poll's start."""
    try:
        return parse_time(value, field)
    except MappingError:
        if isinstance(value, str) and value.startswith("+"):
            return datetime.max.replace(tzinfo=timezone.utc)
        return datetime.min.replace(tzinfo=timezone.utc)


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def make_mapper(config: EsAdapterConfig) -> Mapper:
    """The Metricbeat join when configured, else the field mapping (or passthrough)."""
    time_field = config.elasticsearch.time_field
    if config.metricbeat is not None:
        return metricbeat_mapper(config.metricbeat, time_field)
    return plain_mapper(mapping_from_config(config.mapping, time_field=time_field))


def metricbeat_mapper(settings: MetricbeatJoin, time_field: str) -> Mapper:
    """Joins each host's metricsets per period once the period is closed; remembers each
    host's last record for the slow metricsets (filesystem, uptime)."""
    carry: dict[str, dict[str, Any]] = {}
    wait = timedelta(seconds=settings.join_wait_s)

    def mapper(bodies: list[dict[str, Any]], *, final: bool, now: datetime) -> Mapped:
        records, failures, consumed = join(
            bodies,
            period_s=settings.period_s,
            closed_before=now - wait,
            time_field=time_field,
            complete=final,
            carry=carry,
        )
        carry.update({r["server_name"]: r for r in records})
        return Mapped(records, failures, consumed)

    return mapper


SPEC = AdapterSpec(
    name="elasticsearch",
    config_model=EsAdapterConfig,
    make_source=connect,
    make_mapper=make_mapper,
)


def main(argv: list[str] | None = None) -> int:
    """The Elasticsearch adapter's command line (the console script tft-adapter-elasticsearch)."""
    return run_adapter(SPEC, argv)


if __name__ == "__main__":
    raise SystemExit(main())
