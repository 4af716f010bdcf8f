"""dashboard/tables.py: rows and words from canned daemon answers."""

from __future__ import annotations

import pytest

from dashboard import tables
from risk import LEVEL_NAMES, RISK_METRICS
from tests.dashboard_fixtures import MEM_FACTOR, alerts_body, predict_body


def test_environment_status_is_worst_level() -> None:
    assert tables.environment_status(predict_body()) == "critical"
    assert tables.environment_status({"predictions": {}}) == "unknown"


def test_readiness_shows_warmup() -> None:
    assert tables.readiness(predict_body()) == "2/3 servers ready (warming up 90 %)"
    ready = {"fleet": {"servers": 3, "ready": 3}}
    assert tables.readiness(ready) == "3/3 servers ready"


def test_model_text_flags_fallback() -> None:
    assert tables.model_text({"kind": "tft", "name": "m"}) == ("tft · m", False)
    trained = {"kind": "tft", "name": "m", "trained_on": ["2026-11-01", "2026-11-20"]}
    assert tables.model_text(trained)[0] == "tft · m · trained on 2026-11-01 to 2026-11-20"
    daemon = {
        "kind": "tft",
        "name": "m",
        "trained_on": {"start": "2024-11-20T01:10:00+00:00", "end": "2025-01-28T23:55:00+00:00"},
    }
    assert tables.model_text(daemon)[0] == "tft · m · trained on 2024-11-20 to 2025-01-28"
    fallback = {"kind": "seasonal_naive", "name": "s", "reason": "no model", "last_pass": {}}
    assert tables.model_text(fallback) == ("seasonal_naive · s · no model", True)
    failed = {"kind": "tft", "name": "m", "last_pass": {"error": "boom"}}
    assert tables.model_text(failed)[0].endswith("last forecast pass failed: boom")


def test_risk_distribution_in_risk_order() -> None:
    counts = tables.risk_distribution(predict_body())
    assert list(counts) == list(LEVEL_NAMES)
    assert counts == {"healthy": 2, "watch": 0, "warning": 0, "critical": 1}


def test_top_risk_rows_only_scored() -> None:
    rows = tables.top_risk_rows(predict_body())
    assert [r["server"] for r in rows] == ["ppdb001"]
    assert "about 2 h 10 min" in rows[0]["reason"]


def test_server_rows() -> None:
    rows = tables.server_rows(predict_body())
    assert [r["server"] for r in rows] == ["ppdb001", "ppml003", "ppweb002"]
    first = rows[0]
    assert first["link"] == "[ppdb001](/server?name=ppdb001)"
    assert first["mem_used_pct"] == 80.0
    assert first["mem_used_pct_30m"] == 81.0 and first["mem_used_pct_8h"] == 96.0
    assert first["risk_level"] == "critical" and first["forecast_status"] == "ok"
    assert rows[1]["forecast_status"] == "warming_up"


@pytest.mark.parametrize(
    ("minutes", "text"), [(5, "5 min"), (60, "1 h"), (130, "2 h 10 min"), (0, "0 min")]
)
def test_duration_text(minutes: int, text: str) -> None:
    assert tables.duration_text(minutes) == text


def test_factor_text() -> None:
    assert tables.factor_text(MEM_FACTOR) == (
        "mem_used_pct forecast to exceed 95 (critical) in about 2 h 10 min"
    )
    now = MEM_FACTOR | {"basis": "current", "value": 96.2, "eta_minutes": 0}
    assert tables.factor_text(now).startswith("mem_used_pct is at 96.2")
    p90 = MEM_FACTOR | {"basis": "p90", "eta_minutes": 35}
    assert "p90" in tables.factor_text(p90) and "35 min" in tables.factor_text(p90)


def test_alert_rows() -> None:
    rows = tables.alert_rows(alerts_body())
    assert [r["server"] for r in rows] == ["ppdb001", "ppold9"]
    assert "95" in rows[0]["reason"] and rows[0]["since"] == "2026-12-06T02:40:00Z"
    assert rows[1]["reason"] == "stopped reporting"


def test_heatmap_points_limits_servers() -> None:
    names, z, left_out = tables.heatmap_points(predict_body(), limit=2)
    assert names == ["ppdb001", "ppml003"] and left_out == 1
    assert z[0][RISK_METRICS.index("mem_used_pct")] == 88
    assert sum(z[1]) == 0


def test_accuracy_rows() -> None:
    assert tables.accuracy_rows(predict_body()) == []
    body = predict_body()
    mase = {"tft": {"mem_used_pct": 0.4, "cpu_idle_pct": 0.6}, "last_value": {"x": 0.8}}
    mase["seasonal_naive"] = {"x": None}
    body["predictions"]["ppdb001"]["accuracy"] = {"scored": {"30m": 3}, "30m": {"mase": mase}}
    body["predictions"]["ppdb001"]["accuracy"] |= {"1h": None, "8h": None}
    assert tables.accuracy_rows(body) == [
        {"horizon": "30m", "tft": 0.5, "last_value": 0.8, "seasonal_naive": None}
    ]


def test_accuracy_metric_rows_average_servers_per_metric() -> None:
    one = {"30m": {"mase": {"tft": {"mem_used_pct": 0.4}, "last_value": {"mem_used_pct": 1.0}}}}
    two = {"30m": {"mase": {"tft": {"mem_used_pct": 0.6, "cpu_idle_pct": None}}}, "8h": None}
    rows = tables.accuracy_metric_rows([one, two, None])
    assert [r["metric"] for r in rows] == ["mem_used_pct"]
    assert rows[0]["30m tft"] == 0.5 and rows[0]["30m last_value"] == 1.0
    assert rows[0]["8h tft"] is None
    assert set(rows[0]) == {"metric", *tables.accuracy_metric_columns()}


def test_scored_servers() -> None:
    body = predict_body()
    assert tables.scored_servers(body) == []
    body["predictions"]["ppweb002"]["accuracy"] = {"scored": {"30m": 0, "1h": 2, "8h": 0}}
    body["predictions"]["ppdb001"]["accuracy"] = {"scored": {"30m": 0, "1h": 0, "8h": 0}}
    assert tables.scored_servers(body) == ["ppweb002"]


def test_server_link_escapes_markdown_and_the_url() -> None:
    assert tables.server_link("ppdb001") == "[ppdb001](/server?name=ppdb001)"
    assert tables.server_link("db_1 [a]&b") == (r"[db\_1 \[a\]&b](/server?name=db_1%20%5Ba%5D%26b)")


def test_an_estimates_factor_reads_as_its_reason_and_probabilities() -> None:
    factor = {
        "metric": "cpu_used_pct",
        "severity": "warning",
        "basis": "estimate",
        "probability_1h": 0.12,
        "probability_8h": 0.641,
        "reason": "CPU reached 97% yesterday at 14:05 UTC",
    }
    assert tables.factor_text(factor) == (
        "CPU reached 97% yesterday at 14:05 UTC (critical within 1 h: 12 %, within 8 h: 64 %)"
    )


def test_a_servers_most_likely_trouble_in_words() -> None:
    text = tables.trouble_text({"metric": "mem_used_pct", "1h": 0.02, "8h": 0.305})
    assert text == "mem_used_pct: critical within 1 h: 2 %, within 8 h: 30 %"
