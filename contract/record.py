"""One record, as the daemon's /feed body carries a list of them: the pydantic model and
the description of its validation errors."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from contract.names import server_name_problem
from contract.spec import (
    DEPRECATED_COLUMNS,
    SERVER_NAME_MAX_LENGTH,
    TIMESTAMP_CEILING,
    TIMESTAMP_FLOOR,
    TIMESTAMP_RANGE,
    VALID_STATES,
)


def _not_bool(value: Any) -> Any:
    """JSON true/false is not a number here (as in frames, where a bool column is refused)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


def _as_utc(value: datetime) -> datetime:
    """Naive timestamps are taken as UTC, aware ones converted to UTC, inside the contract's
    range (checked first: comparing aware datetimes never overflows, converting can)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    if not TIMESTAMP_FLOOR <= value < TIMESTAMP_CEILING:
        raise PydanticCustomError("timestamp_range", TIMESTAMP_RANGE)
    return value.astimezone(timezone.utc)


def _printable_name(name: str) -> str:
    """server_name_problem, for what the field's length constraints leave to it."""
    problem = server_name_problem(name)
    if problem is not None:
        raise PydanticCustomError("server_name", problem)
    return name


Percent = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False), BeforeValidator(_not_bool)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False), BeforeValidator(_not_bool)]
Counter = Annotated[int, Field(ge=0), BeforeValidator(_not_bool)]


class MetricRecord(BaseModel):
    """One contract record: a server's 14 metrics at one timestamp.

    Timestamps may be ISO 8601 strings or datetimes; naive ones are taken as UTC.
    Unknown and deprecated fields are rejected (see describe_validation_errors).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp: Annotated[datetime, AfterValidator(_as_utc)]
    server_name: Annotated[
        str,
        Field(min_length=1, max_length=SERVER_NAME_MAX_LENGTH),
        AfterValidator(_printable_name),
    ]
    state: Literal[VALID_STATES]  # type: ignore[valid-type]
    cpu_user_pct: Percent
    cpu_sys_pct: Percent
    cpu_iowait_pct: Percent
    cpu_idle_pct: Percent
    java_cpu_pct: Percent
    mem_used_pct: Percent
    swap_used_pct: Percent
    disk_usage_pct: Percent
    net_in_mb_s: NonNegative
    net_out_mb_s: NonNegative
    back_close_wait: Counter
    front_close_wait: Counter
    load_average: NonNegative
    uptime_days: Annotated[int, Field(ge=0, le=365), BeforeValidator(_not_bool)]


_FRIENDLY = {
    "string_too_short": "must not be empty",
    "missing": "required field missing",
}


def describe_validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Turn a pydantic error on a record or a list of records into {index, field, problem}.

    index is the record's position in the batch (None for a single record).
    """
    return [
        {"index": index, "field": field, "problem": problem + got}
        for index, field, problem, got in validation_problems(exc)
    ]


def validation_problems(
    exc: ValidationError, inputs: bool = True
) -> list[tuple[int | None, str, str, str]]:
    """(index, field, problem, got) of each error: problem names the rule broken, got is
    " (got <the value>)" where the value helps (always "" without inputs, which is faster)."""
    out = []
    for err in exc.errors(include_url=False, include_context=False, include_input=inputs):
        loc = list(err["loc"])
        index = loc.pop(0) if loc and isinstance(loc[0], int) else None
        field = ".".join(str(p) for p in loc) if loc else "(record)"
        field = field or '""'  # a key that is the empty string
        problem, got = err["msg"], ""
        if err["type"] == "extra_forbidden":
            replaced = DEPRECATED_COLUMNS.get(field)
            problem = f"deprecated field, replaced by {replaced}" if replaced else "unknown field"
        elif err["type"] in _FRIENDLY:
            problem = _FRIENDLY[err["type"]]
        elif "input" in err and field != "(record)":
            got = f" (got {err['input']!r:.80})"
        out.append((index, field, problem, got))
    return out
