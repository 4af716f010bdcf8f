"""/predict, /alerts and /health bodies from the service's state: forecast_status, silent
servers, and the times every alert carries."""

from __future__ import annotations

import orjson

from inference import views
from inference.forecast import SeasonalNaiveForecaster
from inference.service import InferenceService
from tests.daemon_helpers import T0, Clock, make_record, steps_body

LAST_SEEN = "2025-06-16T15:10:00Z"  # the 289th step of steps_body(..., 289)


def service_with(clock: Clock) -> InferenceService:
    service = InferenceService(forecaster=SeasonalNaiveForecaster(), clock=clock)
    service.feed(steps_body(["full"], 289, disk_usage_pct=97.0))
    service.feed(steps_body(["fine"], 289))
    service.run_pass()
    return service


def entries(service: InferenceService) -> dict:
    return orjson.loads(views.predict(service))["predictions"]


def test_a_silent_server_is_stale_with_a_silent_alert_that_replaces_its_risk() -> None:
    clock = Clock()
    service = service_with(clock)
    assert {e["forecast_status"] for e in entries(service).values()} == {"ok"}
    clock.now += 900  # fine keeps reporting; full goes quiet
    service.feed(orjson.dumps([make_record("fine", T0 + 289 * 300 + 60)]))
    predict = entries(service)
    assert predict["full"]["forecast_status"] == "stale" and predict["full"]["risk_score"] == 100
    assert predict["fine"]["forecast_status"] == "ok"
    alerts = views.alerts(service)["alerts"]
    assert alerts == [
        {
            "server": "full",
            "kind": "silent",
            "level": "warning",
            "risk_score": None,
            "factors": [],
            "forecast_origin": "2025-06-16T15:05:00Z",
            "last_seen": LAST_SEEN,
            "since": "2025-06-16T15:25:00Z",  # last_seen + TFT_SILENT_AFTER_S (900 s)
        }
    ]
    assert views.alerts(service, "critical")["alerts"] == []
    assert views.health(service)["silent"] == 1


def test_risk_alerts_carry_origin_last_seen_and_since() -> None:
    clock = Clock()
    service = service_with(clock)
    alert = views.alerts(service)["alerts"][0]
    assert (alert["server"], alert["kind"], alert["level"]) == ("full", "risk", "critical")
    assert alert["forecast_origin"] == "2025-06-16T15:05:00Z"
    assert alert["last_seen"] == LAST_SEEN
    since = alert["since"]
    clock.now += 400  # the step closes by the clock: a new forecast, the same level
    assert service.run_pass() == 2
    again = views.alerts(service)["alerts"][0]
    assert again["forecast_origin"] == "2025-06-16T15:10:00Z" and again["since"] == since


def test_a_server_without_a_forecast_is_warming_up_or_pending() -> None:
    service = InferenceService(forecaster=SeasonalNaiveForecaster(), clock=Clock())
    service.feed(steps_body(["young"], 10, T0 + 279 * 300))
    service.feed(steps_body(["ready"], 289))
    predict = entries(service)
    assert predict["young"]["forecast_status"] == "warming_up"
    assert predict["young"]["warmup"] == {"ready": False, "progress": 3.1, "observed": 3.1}
    assert predict["ready"]["forecast_status"] == "pending"
    assert predict["ready"]["risk_score"] is None


def test_a_host_back_after_two_days_is_not_ready_and_shows_its_observed_share() -> None:
    clock = Clock(T0 + 866 * 300 + 30)  # its newest step (865) closed by the clock
    service = InferenceService(forecaster=SeasonalNaiveForecaster(), clock=clock)
    service.feed(steps_body(["back"], 289))
    service.feed(steps_body(["back"], 1, T0 + (289 + 576) * 300))  # two days later
    entry = entries(service)["back"]
    assert entry["warmup"]["ready"] is False and entry["warmup"]["observed"] == 0.3  # 1 step
    assert entry["forecast_status"] == "warming_up" and service.run_pass() == 0


def test_history_lists_the_closed_steps_since_the_first_tick_with_gaps_as_null() -> None:
    clock = Clock(T0 + 4 * 300 + 10)  # step 4 is open
    service = InferenceService(forecaster=SeasonalNaiveForecaster(), clock=clock)
    ticks = [make_record("a", T0 + 300 * k, mem_used_pct=10.0 * k) for k in (0, 1, 3, 4)]
    service.feed(orjson.dumps([*ticks, make_record("a", T0 + 300 + 30, mem_used_pct=20.0)]))
    body = views.history(service, "a")
    assert body["timestamps"] == [
        "2025-06-15T15:10:00Z",
        "2025-06-15T15:15:00Z",
        "2025-06-15T15:20:00Z",
        "2025-06-15T15:25:00Z",
    ]
    assert body["values"]["mem_used_pct"] == [0.0, 15.0, None, 30.0]  # step 1: mean of two
    assert body["states"] == ["healthy", "healthy", None, "healthy"]
    assert body["step_seconds"] == 300 and views.history(service, "nobody") is None
