"""The data contract's public module: its facts (contract/spec.py), server names
(contract/names.py), the state logic, time features and step aggregation. Frame
validation and the record model: test_contract_checks.py, test_contract_record.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

import data_contract as dc
from tests.contract_helpers import SPEC_RECORD
from tests.contract_helpers import only_error as _only_error


def test_contract_shape() -> None:
    assert dc.CONTRACT_VERSION == "2.0.0"
    assert len(dc.REQUIRED_COLUMNS) == 17 and len(dc.METRIC_COLUMNS) == 14
    assert len(set(dc.REQUIRED_COLUMNS)) == 17
    assert sorted(dc.VALID_STATES) == list(dc.VALID_STATES) and len(dc.VALID_STATES) == 8
    assert set(dc.DEPRECATED_COLUMNS) == {"cpu_pct", "mem_pct", "disk_io_mb_s", "latency_ms"}
    assert set(dc.INT_COLUMNS) == {"back_close_wait", "front_close_wait", "uptime_days"}
    assert len(dc.PERCENT_COLUMNS) == 8


def test_the_step_quantiles_horizons_and_bounds_are_defined_once() -> None:
    """Defined here and nowhere else: the daemon, the trainer, the scoring and the
    early warning read them from data_contract."""
    from inference import forecast, predictions
    from training import dataset, model, scoring
    from trouble import evidence

    assert dc.STEP_SECONDS == 300 and dc.STEPS_PER_HOUR == 12 and dc.STEPS_PER_DAY == 288
    assert dc.QUANTILES == ("p10", "p50", "p90") and dc.QUANTILE_LEVELS == (0.1, 0.5, 0.9)
    assert dc.REPORTED_HORIZONS == {"30m": 6, "1h": 12, "8h": 96}
    assert forecast.QUANTILES is dc.QUANTILES and predictions.QUANTILES is dc.QUANTILES
    assert model.QUANTILES is dc.QUANTILE_LEVELS
    assert predictions.HORIZONS is dc.REPORTED_HORIZONS is scoring.HORIZONS
    assert list(dataset.REPORTED_HORIZONS.values()) == list(dc.REPORTED_HORIZONS.values())
    assert dataset.STEP_SECONDS == dc.STEP_SECONDS and scoring.SEASON == dc.STEPS_PER_DAY
    assert (evidence.DAY, evidence.HOUR, evidence.HORIZON) == (288, 12, 96)
    assert [m.low for m in dc.METRICS] == list(dc.METRIC_LOW) == list(forecast.LOW)
    high = [np.inf if m.high is None else m.high for m in dc.METRICS]
    assert high == list(dc.METRIC_HIGH) == list(forecast.HIGH) == list(scoring.HIGH)
    assert not dc.METRIC_LOW.flags.writeable and not dc.METRIC_HIGH.flags.writeable


def test_the_parts_are_re_exported() -> None:
    """Callers import everything from data_contract, whichever part of contract/ has it."""
    from contract import checks, names, record, spec

    for module in (spec, names, checks, record):
        public = [n for n in vars(module) if not n.startswith("_") and n.isidentifier()]
        for name in public:
            value = getattr(module, name)
            if getattr(value, "__module__", module.__name__) == module.__name__ and (
                callable(value) or name.isupper()
            ):
                assert getattr(dc, name) is value, f"{module.__name__}.{name}"
    assert set(dc.__all__) <= set(vars(dc))


# --- server names and the timestamp range (issue 18, items 4 and 5) -----------------

BAD_NAMES = [
    "web\x00",  # a NUL: the state file's fixed-width strings dropped it (two servers, one name)
    "web\t01",
    "web\x7f",
    "a\u200bb",  # zero-width space (format)
    "\ufeffweb",  # byte order mark (format)
    "web\u2028",  # line separator
    "web\u00a001",  # no-break space: looks like a space, is not one
    " web",
    "web ",
    "x" * 254,
]
GOOD_NAMES = ["web", "wéb-01.example.com", "web 01", "a,b", "x" * 253, "サーバー1", "db@eu:1"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_invisible_characters_surrounding_spaces_and_long_names_are_refused(
    small_fleet: pd.DataFrame, name: str
) -> None:
    assert dc.server_name_problem(name)
    with pytest.raises(ValidationError) as info:
        dc.MetricRecord.model_validate({**SPEC_RECORD, "server_name": name})
    [error] = dc.describe_validation_errors(info.value)
    assert error["field"] == "server_name" and error["problem"]
    frame = small_fleet.copy()
    frame.loc[3, "server_name"] = name
    error = _only_error(frame)
    assert error.startswith("server_name: ") and "first at row(s) 3" in error


@pytest.mark.parametrize("name", GOOD_NAMES, ids=repr)
def test_printable_names_of_up_to_253_characters_are_accepted(
    small_fleet: pd.DataFrame, name: str
) -> None:
    assert dc.server_name_problem(name) is None
    assert dc.MetricRecord.model_validate({**SPEC_RECORD, "server_name": name}).server_name == name
    assert dc.validate_schema(small_fleet.assign(server_name=name)) == (True, [])


# --- states and time features ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "state"),
    [
        ({"cpu_pct": 96, "mem_pct": 10}, "critical_issue"),
        ({"cpu_pct": 20, "mem_pct": 96}, "critical_issue"),
        ({"cpu_pct": 20, "mem_pct": 20, "anomaly_score": 0.8}, "critical_issue"),
        ({"cpu_pct": 85, "mem_pct": 20}, "heavy_load"),
        ({"cpu_pct": 2, "mem_pct": 5}, "idle"),
        ({"cpu_pct": 40, "mem_pct": 40, "hour": 10, "is_business_hours": True}, "morning_spike"),
        ({"cpu_pct": 40, "mem_pct": 40, "hour": 12, "is_business_hours": True}, "healthy"),
        ({"cpu_pct": 40, "mem_pct": 40}, "healthy"),
        ({"cpu_pct": 99, "mem_pct": 99, "offline": True}, "offline"),
        ({"cpu_pct": 99, "mem_pct": 99, "maintenance": True}, "maintenance"),
        ({"cpu_pct": 40, "mem_pct": 40, "recovering": True}, "recovery"),
        ({"cpu_pct": 97, "mem_pct": 40, "recovering": True}, "critical_issue"),
    ],
)
def test_determine_state(kwargs: dict, state: str) -> None:
    args = {"hour": 3, "is_business_hours": False, **kwargs}
    assert dc.determine_state(**args) == state


def test_determine_state_vectorised() -> None:
    states = dc.determine_state(
        np.array([96.0, 50.0, 1.0]), np.array([10.0, 50.0, 1.0]), np.array([1, 1, 1]), False
    )
    assert states.tolist() == ["critical_issue", "healthy", "idle"]
    assert set(states.tolist()) <= set(dc.VALID_STATES)


def test_time_features() -> None:
    stamps = pd.Series(pd.to_datetime(["2025-01-06 09:30", "2025-01-11 10:00", "2025-03-04 17:00"]))
    features = dc.time_features(stamps)
    assert list(features.columns) == list(dc.TIME_FEATURES)
    assert features["hour"].tolist() == [9, 10, 17]
    assert features["day_of_week"].tolist() == [0, 5, 1]
    assert features["month"].tolist() == [1, 1, 3]
    assert features["is_weekend"].tolist() == [0, 1, 0]
    assert features["is_business_hours"].tolist() == [1, 0, 0]


# --- server name encoding ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "server_id"),
    [
        ("ppml0001", "921211"),
        ("ppdb001", "215733"),
        ("ppweb001", "305220"),
        ("ppvra00a0018", "6509"),
        ("", "12610"),
    ],
)
def test_encode_server_name_pinned(name: str, server_id: str) -> None:
    assert dc.encode_server_name(name) == server_id


def test_mapping_round_trip() -> None:
    names = ["ppml0001", "ppdb001", "ppweb001", "ppml0001"]
    mapping = dc.create_server_mapping(names)
    assert set(mapping) == {"name_to_id", "id_to_name"}
    assert len(mapping["name_to_id"]) == 3
    for name in names:
        assert dc.decode_server_name(mapping["name_to_id"][name], mapping) == name
    assert dc.decode_server_name("42", mapping) == "UNKNOWN_42"


def test_mapping_collision_keeps_first_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert dc.encode_server_name("host81") == dc.encode_server_name("host433") == "944517"
    mapping = dc.create_server_mapping(["host81", "host433"])
    assert mapping["id_to_name"] == {"944517": "host433"}
    assert len(mapping["name_to_id"]) == 2
    assert "server id collision" in caplog.text


# --- aggregation rule ----------------------------------------------------------------


def test_aggregation_rule_covers_every_metric_once() -> None:
    assert set(dc.AGGREGATION) == set(dc.METRIC_COLUMNS)
    assert dc.MAX_COLUMNS == ("back_close_wait", "front_close_wait")
    assert dc.LAST_COLUMNS == ("uptime_days",)
    every = sorted([*dc.MEAN_INDEX, *dc.MAX_INDEX, *dc.LAST_INDEX])
    assert every == list(range(len(dc.METRIC_COLUMNS)))


def test_aggregate_ticks_means_gauges_maxes_counters_keeps_last_uptime() -> None:
    col = {c: i for i, c in enumerate(dc.METRIC_COLUMNS)}
    ticks = np.zeros((3, len(dc.METRIC_COLUMNS)))
    ticks[:, col["cpu_user_pct"]] = [10.0, 20.0, 60.0]
    ticks[:, col["back_close_wait"]] = [3, 9, 1]
    ticks[:, col["uptime_days"]] = [4, 4, 0]  # a restart within the step
    step = dc.aggregate_ticks(ticks)
    assert step.shape == (len(dc.METRIC_COLUMNS),)
    assert step[col["cpu_user_pct"]] == 30.0
    assert step[col["back_close_wait"]] == 9 and step[col["uptime_days"]] == 0
    many = dc.aggregate_ticks(np.stack([ticks, ticks[::-1]]))  # (steps, ticks, metrics)
    assert many.shape == (2, len(dc.METRIC_COLUMNS))
    np.testing.assert_array_equal(many[0], step)
    assert many[1, col["uptime_days"]] == 4 and many[1, col["back_close_wait"]] == 9
    with pytest.raises(ValueError):
        dc.aggregate_ticks(np.zeros((0, len(dc.METRIC_COLUMNS))))
