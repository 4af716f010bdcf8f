"""Source documents -> /feed records: the pure mapping layer of the database adapters.

A mapping (the "mapping" object of an adapter's JSON config) names where each contract
field lives in a source document:

    {"fields": {"cpu_user_pct": "cpu.user",
                "mem_used_pct": {"source": "system.memory.actual.used.pct", "scale": 100}},
     "server_name": "host.name", "state": "status"}

A path resolves through nested objects and also through literal dotted keys. With a
"fields" table, metrics it does not name are 0; without one (passthrough) every metric
is read under its contract name and a missing one is an error. A source without a state
gets the spec's state (data_contract.determine_state). Every batch of records is checked
by the contract's parser, the one the daemon's /feed uses (contract_parse.parse_records:
data_contract.MetricRecord behind a vectorised fast path), so what the daemon would
refuse becomes a Failure here, naming the field and the problem, instead.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import orjson
import pandas as pd
from pydantic import ValidationError

import data_contract as dc
from adapters.fields import (
    EPOCH,
    MappingError,
    as_mapping_error,
    format_time,
    get_path,
    parse_time,
    to_number,
)
from contract_parse import parse_records

__all__ = [
    "EPOCH",
    "Failure",
    "Mapping",
    "MappingError",
    "Rule",
    "as_failure",
    "as_mapping_error",
    "check_record",
    "derive_state",
    "derive_states",
    "format_time",
    "get_path",
    "map_documents",
    "mapping_from_config",
    "parse_time",
    "to_number",
    "to_record",
]

_NUMBER_TYPES = frozenset({int, float})
_CONFIG_KEYS = ("fields", "server_name", "state")
_RULE_KEYS = frozenset({"source", "scale"})


@dataclass(frozen=True)
class Rule:
    """Where one metric comes from: a source path, and a factor its value is multiplied by."""

    source: str
    scale: float = 1.0


@dataclass(frozen=True)
class Mapping:
    """A validated mapping; fields None is passthrough (metrics under their contract names)."""

    fields: dict[str, Rule] | None = None
    server_name: str = "server_name"
    state: str = "state"
    time_field: str = "timestamp"

    @functools.cached_property
    def _passthrough(self) -> dict[str, Rule]:
        return {name: Rule(name) for name in dc.METRIC_COLUMNS}

    def rules(self) -> dict[str, Rule]:
        """The rule of each mapped metric (passthrough: every metric, by its own name)."""
        return self._passthrough if self.fields is None else self.fields


@dataclass(frozen=True)
class Failure:
    """A document (or a group of them) that could not be mapped; the loop quarantines it."""

    index: int
    field: str
    problem: str
    document: Any


def as_failure(index: int, error: Exception, document: Any) -> Failure:
    """The Failure of the document at index whose mapping raised error (as_mapping_error)."""
    error = as_mapping_error(error)
    return Failure(index, error.field, error.problem, document)


# --- configuration --------------------------------------------------------------------


def mapping_from_config(config: dict | None, *, time_field: str = "timestamp") -> Mapping:
    """The Mapping of a config's "mapping" object (None: passthrough).

    Raises ValueError naming the offending key, so a bad config fails at start."""
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise ValueError(f"mapping: must be an object, got {type(config).__name__}")
    unknown = sorted(set(config) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"mapping.{unknown[0]}: unknown key (known: {', '.join(_CONFIG_KEYS)})")
    fields = config.get("fields")
    return Mapping(
        fields=None if fields is None else _rules(fields),
        server_name=_path(config.get("server_name", "server_name"), "mapping.server_name"),
        state=_path(config.get("state", "state"), "mapping.state"),
        time_field=_path(time_field, "time_field"),
    )


def _path(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: must be a non-empty source path string, got {value!r}")
    return value


def _rules(fields: object) -> dict[str, Rule]:
    if not isinstance(fields, dict) or not fields:
        raise ValueError("mapping.fields: must be a non-empty object {contract metric: rule}")
    for name in fields:
        if name not in dc.METRIC_SPECS:
            replaced = dc.DEPRECATED_COLUMNS.get(name)
            why = f"deprecated, replaced by {replaced}" if replaced else "not a contract metric"
            known = ", ".join(dc.METRIC_COLUMNS)
            raise ValueError(f"mapping.fields.{name}: {why} (metrics: {known})")
    return {name: _rule(spec, f"mapping.fields.{name}") for name, spec in fields.items()}


def _rule(spec: object, key: str) -> Rule:
    if isinstance(spec, str):
        return Rule(_path(spec, key))
    if not isinstance(spec, dict) or set(spec) - _RULE_KEYS:
        raise ValueError(f"{key}: must be a source path or {{'source': path, 'scale': factor}}")
    scale = spec.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, Real) or not 0 < scale < math.inf:
        raise ValueError(f"{key}.scale: must be a positive number, got {scale!r}")
    return Rule(_path(spec.get("source"), f"{key}.source"), float(scale))


# --- records --------------------------------------------------------------------------


def derive_states(records: list[dict]) -> list[str]:
    """The spec's state of each record (data_contract.determine_state), vectorised: CPU
    used is 100 - cpu_idle_pct, memory mem_used_pct, hour and business hours of its
    timestamp in UTC; no anomaly score or operator flags are known to an adapter."""
    if not records:
        return []
    stamps = pd.DatetimeIndex([parse_time(r["timestamp"]) for r in records])
    feats = dc.time_features(stamps)
    idle = np.array([float(r["cpu_idle_pct"]) for r in records])
    mem = np.array([float(r["mem_used_pct"]) for r in records])
    hour, business = feats["hour"].to_numpy(), feats["is_business_hours"].to_numpy()
    return [str(s) for s in dc.determine_state(100.0 - idle, mem, hour, business)]


def derive_state(record: dict) -> str:
    """The spec's state for one record (see derive_states)."""
    return derive_states([record])[0]


def check_record(record: dict) -> dict:
    """The record as /feed takes it, checked by the contract's MetricRecord (the daemon's
    rules: known state, bounds, integers, no NaN); MappingError for its first problem."""
    try:
        model = dc.MetricRecord.model_validate(record)
    except ValidationError as exc:
        first = dc.describe_validation_errors(exc)[0]
        raise MappingError(first["field"], first["problem"]) from None
    out = model.model_dump()
    out["timestamp"] = format_time(model.timestamp)
    return out


def _metric(doc: dict, column: str, rule: Rule) -> float:
    where = "" if rule.source == column else f" (source {rule.source})"
    try:
        value = to_number(get_path(doc, rule.source), column) * rule.scale
    except MappingError as exc:
        raise MappingError(column, exc.problem + where) from None
    if dc.METRIC_SPECS[column].kind == "int" and rule.scale != 1.0:
        return float(math.floor(value))  # e.g. uptime seconds x 1/86400 -> whole days
    return value


def _extract(doc: object, mapping: Mapping) -> dict:
    """The 17 fields of a document, unchecked; state None where the source has none."""
    if not isinstance(doc, dict):
        raise MappingError("(document)", f"must be an object, got {type(doc).__name__}")
    name = get_path(doc, mapping.server_name)
    if name is None:
        raise MappingError("server_name", f"missing (source {mapping.server_name})")
    record = {
        "timestamp": parse_time(get_path(doc, mapping.time_field), mapping.time_field),
        "server_name": name,
        "state": get_path(doc, mapping.state),
    }
    if mapping.fields is None and _plain_numbers(doc, record):
        return record
    rules = mapping.rules()
    for column in dc.METRIC_COLUMNS:
        rule = rules.get(column)
        record[column] = 0.0 if rule is None else _metric(doc, column, rule)
    return record


def _plain_numbers(doc: dict, record: dict) -> bool:
    """Passthrough's common case: every metric a finite int or float under its own name,
    copied into record (True); otherwise False, and the caller checks each one."""
    values = [doc.get(column) for column in dc.METRIC_COLUMNS]
    if not set(map(type, values)) <= _NUMBER_TYPES:  # bool, None, str...: checked one by one
        return False
    if not math.isfinite(sum(values)):  # a NaN or an infinity among them
        return False
    record.update(zip(dc.METRIC_COLUMNS, values, strict=True))
    return True


def to_record(doc: dict, mapping: Mapping) -> dict:
    """One source document as a /feed record; MappingError naming the field and problem."""
    record = _extract(doc, mapping)
    if record["state"] is None:
        record["state"] = derive_state(record)
    return check_record(record)


def map_documents(docs: Iterable[Any], mapping: Mapping) -> tuple[list[dict], list[Failure]]:
    """The records of the documents that map, and a Failure for each one that does not
    (never raised: the loop quarantines them). States are derived in one vectorised pass,
    and the records are checked in one pass by the contract's parser (as /feed checks them)."""
    extracted: list[tuple[int, Any, dict]] = []
    failures: list[Failure] = []
    for index, doc in enumerate(docs):
        try:
            extracted.append((index, doc, _extract(doc, mapping)))
        except Exception as exc:  # the per-document boundary (see as_failure)
            failures.append(as_failure(index, exc, doc))
    stateless = [record for _, _, record in extracted if record["state"] is None]
    for record, state in zip(stateless, derive_states(stateless), strict=True):
        record["state"] = state
    records, rejected = _checked_records(extracted)
    return records, sorted(failures + rejected, key=lambda f: f.index)


def _checked_records(extracted: list[tuple[int, Any, dict]]) -> tuple[list[dict], list[Failure]]:
    """The records /feed would apply, and a Failure (its first error) for each other."""
    for _, _, record in extracted:
        record["timestamp"] = format_time(record["timestamp"])
    try:
        body = orjson.dumps([record for _, _, record in extracted])
    except TypeError:  # a value JSON cannot hold (e.g. an ObjectId as the name): one by one
        return _checked_one_by_one(extracted)
    errors: dict[int, dict] = {}
    for error in parse_records(body)[1]:
        errors.setdefault(error["index"], error)
    records, failures = [], []
    for position, (index, doc, record) in enumerate(extracted):
        error = errors.get(position)
        if error is None:
            records.append(record)
        else:
            failures.append(Failure(index, error["field"], error["problem"], doc))
    return records, failures


def _checked_one_by_one(extracted: list[tuple[int, Any, dict]]) -> tuple[list[dict], list[Failure]]:
    records, failures = [], []
    for index, doc, record in extracted:
        try:
            records.append(check_record(record))
        except MappingError as exc:
            failures.append(Failure(index, exc.field, exc.problem, doc))
    return records, failures
