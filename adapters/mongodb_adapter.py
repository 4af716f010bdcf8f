"""MongoDB adapter: metrics documents from a collection to the TFT daemon's /feed.

    python adapters/mongodb_adapter.py --daemon --config adapters/mongodb_adapter_config.json
    python adapters/mongodb_adapter.py --once --config ... [--dry-run] [--backfill-hours 24]
    python adapters/mongodb_adapter.py --config ... --export fleet.parquet --since 2026-11-01

Documents are read in (time, _id) order, paged with
find({$or: [{time: {$gt: t}}, {time: t, _id: {$gt: id}}]}).sort(time, _id).limit(n),
so any number of documents may share a timestamp. The time field must hold BSON dates;
dates past year 9999 (or before year 1) are decoded as bson's DatetimeMS rather than
failing the whole page, and read as 9999-12-31 (or 0001-01-01): dated past the clock, such
a document is quarantined like any other future one.
The loop, cursor, quarantine and flags are shared with the Elasticsearch adapter
(adapters/base.py, adapters/runner.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pymongo
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.errors import BSONError
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import PyMongoError

from adapters.base import Doc, Mapper, SourceUnavailable, plain_mapper
from adapters.config import AdapterConfig, AdapterSettings
from adapters.mapping import mapping_from_config, parse_time
from adapters.runner import AdapterSpec
from adapters.runner import main as run_adapter

CLAMP = CodecOptions(tz_aware=True, datetime_conversion=DatetimeConversion.DATETIME_CLAMP)


class MongoAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str
    password: str | None = None  # or TFT_MONGODB_PASSWORD
    auth_source: str = "admin"


class MongoDatabase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: str | None = None  # mongodb://... or mongodb+srv://...; else host and port
    host: str = "localhost"
    port: int = Field(default=27017, ge=1, le=65_535)
    database: str
    collection: str
    time_field: str = "timestamp"
    auth: MongoAuth | None = None
    tls: bool = False
    tls_ca_file: Path | None = None
    tls_allow_invalid_certificates: bool = False
    timeout_ms: int = Field(default=10_000, ge=100)


class MongoAdapterConfig(AdapterConfig):
    database: MongoDatabase


class MongoSource:
    """pages() over one collection, in (time, _id) order."""

    def __init__(self, *, collection: Any, time_field: str) -> None:
        self.collection, self.time_field = collection, time_field

    def pages(self, start: datetime, until: datetime | None, size: int) -> Iterator[list[Doc]]:
        after: tuple[datetime, Any] | None = None
        while True:
            try:
                found = list(self._find(start, until, after, size))
            except (PyMongoError, BSONError) as error:
                raise SourceUnavailable(f"MongoDB: {error}") from error
            if not found:
                return
            last = (found[-1][self.time_field], found[-1]["_id"])  # as stored, not clamped
            yield [self._doc(body) for body in found]
            if len(found) < size:
                return
            after = last

    def _find(self, start: datetime, until: datetime | None, after: Any, size: int) -> Any:
        t = self.time_field
        if after is None:
            query: dict[str, Any] = {t: {"$gte": start}}
        else:
            at, last_id = after
            query = {"$or": [{t: {"$gt": at}}, {t: at, "_id": {"$gt": last_id}}]}
        if until is not None:
            query = {"$and": [query, {t: {"$lt": until}}]}
        cursor = self.collection.find(query).sort([(t, 1), ("_id", 1)])
        return cursor.limit(size).batch_size(size)

    def _doc(self, body: dict[str, Any]) -> Doc:
        value = body.get(self.time_field)
        if isinstance(value, DatetimeMS):  # outside datetime's years 1..9999
            value = value.as_datetime(CLAMP)
        moment = parse_time(value, self.time_field)
        body[self.time_field] = moment  # in UTC once: the mapping takes it as it is
        return Doc(str(body["_id"]), moment, body)

    def close(self) -> None:
        self.collection.database.client.close()


def connect(config: MongoAdapterConfig, settings: AdapterSettings) -> MongoSource:
    """A source on the configured collection (the client connects lazily)."""
    db = config.database
    options: dict[str, Any] = {
        "tz_aware": True,
        "serverSelectionTimeoutMS": db.timeout_ms,
        "connectTimeoutMS": db.timeout_ms,
        "socketTimeoutMS": 6 * db.timeout_ms,
        "appname": "tft-mongodb-adapter",
        "datetime_conversion": "DATETIME_AUTO",  # one date past 9999 must not fail a page
    }
    if db.tls:
        options |= {"tls": True, "tlsAllowInvalidCertificates": db.tls_allow_invalid_certificates}
        if db.tls_ca_file:
            options["tlsCAFile"] = str(db.tls_ca_file)
    if db.auth is not None:
        password = db.auth.password or (
            settings.tft_mongodb_password.get_secret_value()
            if settings.tft_mongodb_password
            else None
        )
        options |= {"username": db.auth.username, "password": password}
        options["authSource"] = db.auth.auth_source
    client = pymongo.MongoClient(db.uri or db.host, None if db.uri else db.port, **options)
    return MongoSource(collection=client[db.database][db.collection], time_field=db.time_field)


def make_mapper(config: MongoAdapterConfig) -> Mapper:
    return plain_mapper(mapping_from_config(config.mapping, time_field=config.database.time_field))


SPEC = AdapterSpec(
    name="mongodb",
    config_model=MongoAdapterConfig,
    make_source=connect,
    make_mapper=make_mapper,
)


def main(argv: list[str] | None = None) -> int:
    """The MongoDB adapter's command line (the console script tft-adapter-mongodb)."""
    return run_adapter(SPEC, argv)


if __name__ == "__main__":
    raise SystemExit(main())
