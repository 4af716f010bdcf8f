"""Every endpoint of the inference daemon, in-process (httpx.ASGITransport over create_app),
with the fast labelled baseline as the forecaster; reloading loads the real TFT."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi import FastAPI

import data_contract as dc
from inference import views
from inference.app import INLINE_BODY_BYTES, create_app
from inference.forecast import SeasonalNaiveForecaster
from inference.settings import DaemonSettings
from tests.daemon_helpers import AUTH, KEY, NOW, T0, Clock, make_record, running, steps_body

pytestmark = pytest.mark.anyio
MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def settings(**changes: Any) -> DaemonSettings:
    base: dict[str, Any] = {
        "api_key": KEY,
        "state_dir": None,
        "forecast_worker": False,
        "models_dir": MODELS,
        "model": MODELS / "latest",
    }
    return DaemonSettings(_env_file=None, **{**base, **changes})


def app_with(forecaster: Any = None, clock: Clock | None = None, **changes: Any) -> FastAPI:
    model = forecaster or SeasonalNaiveForecaster()
    return create_app(settings(**changes), model=model, clock=clock or Clock())


class Exploding(SeasonalNaiveForecaster):
    def forecast(self, *args: Any) -> np.ndarray:
        raise RuntimeError("CUDA out of memory (simulated)")


# --- /feed ---------------------------------------------------------------------------


async def test_feed_accepts_a_batch_and_reports_warmup() -> None:
    async with running(app_with()) as client:
        response = await client.post("/feed", content=steps_body(["a", "b"], 144), headers=AUTH)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok" and body["received"] == body["applied"] == 288
        assert body["warmup_progress"] == 50.0  # 144 of 288 steps: the clock closed the last
        assert body["new_servers"] == 2 and body["duplicates"] == 0


@pytest.mark.parametrize(
    ("headers", "status"), [({}, 401), ({"X-API-Key": "wrong"}, 403), ({"X-API-Key": ""}, 403)]
)
async def test_feed_auth_is_checked_before_the_body(headers: dict, status: int) -> None:
    async with running(app_with()) as client:
        response = await client.post("/feed", content=b"{not json", headers=headers)
        assert response.status_code == status
        assert (await client.get("/health")).json()["servers"] == 0


async def test_feed_body_over_the_limit_is_413() -> None:
    async with running(app_with(max_body_bytes=2000)) as client:
        response = await client.post("/feed", content=steps_body(["a"], 10), headers=AUTH)
        assert response.status_code == 413
        assert "limit" in response.json()["detail"]


async def test_the_valid_records_of_a_batch_apply_and_the_invalid_are_named() -> None:
    records = [make_record("a", T0), make_record("b", T0, mem_used_pct=130.0)]
    records.append(make_record("c", T0, state="exploded", cpu_user_pct="x"))
    async with running(app_with()) as client:
        response = await client.post("/feed", content=orjson.dumps(records), headers=AUTH)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "partial"
        assert (body["received"], body["applied"], body["rejected"]) == (3, 1, 2)
        errors = body["errors"]
        assert [(e["index"], e["field"]) for e in errors] == [
            (1, "mem_used_pct"),
            (2, "state"),
            (2, "cpu_user_pct"),
        ]
        assert "100" in errors[0]["problem"]
        health = (await client.get("/health")).json()
        assert health["servers"] == 1 and health["feed"]["rejected"] == 2


async def test_a_batch_with_nothing_valid_is_422_with_the_same_report() -> None:
    records = [make_record("b", T0, mem_used_pct=130.0), {"server_name": "x"}]
    async with running(app_with()) as client:
        response = await client.post("/feed", content=orjson.dumps(records), headers=AUTH)
        body = response.json()
        assert response.status_code == 422 and body["status"] == "rejected"
        assert (body["received"], body["applied"], body["rejected"]) == (2, 0, 2)
        assert {e["index"] for e in body["errors"]} == {0, 1}
        not_json = await client.post("/feed", content=b"{oops", headers=AUTH)
        assert not_json.status_code == 422 and not_json.json()["errors"][0]["field"] == "(body)"
        assert (await client.get("/health")).json()["servers"] == 0


async def test_ticks_from_the_future_are_rejected_by_name_and_the_rest_applied() -> None:
    ahead = NOW + 301
    records = [make_record("a", T0), make_record("a", int(ahead)), make_record("b", T0 + 5)]
    async with running(app_with()) as client:
        body = (await client.post("/feed", content=orjson.dumps(records), headers=AUTH)).json()
        assert (body["status"], body["applied"], body["rejected"]) == ("partial", 2, 1)
        error = body["errors"][0]
        assert (error["index"], error["field"]) == (1, "timestamp")
        assert "TFT_MAX_CLOCK_SKEW_S" in error["problem"] and "300" in error["problem"]
        predict = (await client.get("/predict", headers=AUTH)).json()["predictions"]
        assert predict["a"]["last_seen"] == "2025-06-15T15:10:00Z"  # not a year ahead
    async with running(app_with(max_clock_skew_s=0)) as client:  # 0: the check is off
        body = (await client.post("/feed", content=orjson.dumps(records), headers=AUTH)).json()
        # a's first tick is now 290 steps behind its newest: still inside the ring of 324
        # closed steps (24 h + 3 h, the early warning's history), so applied
        assert (body["status"], body["applied"], body["stale"]) == ("ok", 3, 0)


async def test_new_servers_past_the_limit_are_rejected_known_ones_applied() -> None:
    async with running(app_with(max_servers=2)) as client:
        await client.post("/feed", content=steps_body(["a", "b"], 1), headers=AUTH)
        records = [make_record("a", T0 + 300), make_record("c", T0 + 300)]
        body = (await client.post("/feed", content=orjson.dumps(records), headers=AUTH)).json()
        assert (body["status"], body["applied"], body["rejected"]) == ("partial", 1, 1)
        assert body["errors"][0]["index"] == 1 and body["errors"][0]["field"] == "server_name"
        assert "c" not in (await client.get("/predict", headers=AUTH)).json()["predictions"]


async def test_a_retried_batch_changes_nothing() -> None:
    body = steps_body(["a"], 5)
    async with running(app_with()) as client:
        await client.post("/feed", content=body, headers=AUTH)
        first = await client.get("/predict", headers=AUTH)
        retry = (await client.post("/feed", content=body, headers=AUTH)).json()
        assert (retry["applied"], retry["duplicates"]) == (0, 5)
        again = await client.get("/predict", headers=AUTH)
        assert first.json()["predictions"] == again.json()["predictions"]


async def test_a_name_with_a_control_character_is_rejected_by_name() -> None:
    """ "web" and "web\\u0000" were two servers that the state file saved as one name, and
    the daemon could not start again (issue 18, item 4)."""
    records = [make_record("web", T0), make_record("web\u0000", T0)]
    async with running(app_with()) as client:
        body = (await client.post("/feed", content=orjson.dumps(records), headers=AUTH)).json()
        assert (body["status"], body["applied"], body["rejected"]) == ("partial", 1, 1)
        assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "server_name")]
        predictions = (await client.get("/predict", headers=AUTH)).json()["predictions"]
    assert list(predictions) == ["web"]


OUT_OF_RANGE = ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "1969-07-20T20:17:00Z"]


@pytest.mark.parametrize("stamp", OUT_OF_RANGE)
@pytest.mark.parametrize("path", ["fast", "full"])
async def test_a_timestamp_out_of_range_is_rejected_by_name_never_a_500(
    stamp: str, path: str
) -> None:
    """The first answered 500 (the clock-skew message overflowed), the second 500 on the
    full path and stale on the fast one, the third was applied to a new server."""
    odd = make_record("odd", T0, timestamp=stamp)
    records = [odd] if path == "fast" else [odd, make_record("a", T0, cpu_user_pct="5")]
    async with running(app_with()) as client:
        response = await client.post("/feed", content=orjson.dumps(records), headers=AUTH)
        predictions = (await client.get("/predict", headers=AUTH)).json()["predictions"]
    body = response.json()
    assert response.status_code == (422 if path == "fast" else 200)
    assert body["rejected"] == 1 and body["stale"] == 0
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(0, "timestamp")]
    assert "odd" not in predictions


async def test_a_body_of_empty_records_is_checked_off_the_loop_and_answered_in_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sender on an old schema sent 1 MiB of [{}, ...]: it was checked on the event loop
    (under INLINE_BODY_BYTES), took 52 s and answered 479 MB (issue 18, item 6)."""
    n = 40_000
    body = orjson.dumps([{}] * n)
    assert len(body) < INLINE_BODY_BYTES
    app, threads = app_with(), []
    async with running(app) as client:
        service = app.state.service
        feed = service.feed

        def spy(*args: Any) -> Any:
            threads.append(threading.get_ident())
            return feed(*args)

        monkeypatch.setattr(service, "feed", spy)
        response = await client.post("/feed", content=body, headers=AUTH)
    answer = response.json()
    assert threads and threading.get_ident() not in threads  # the check ran in the pool
    assert response.status_code == 422 and len(response.content) < 100_000
    assert (answer["received"], answer["rejected"], answer["applied"]) == (n, n, 0)
    assert len(answer["errors"]) == 100 and answer["errors"][0]["index"] == 0
    counts = {(c["field"], c["problem"]): c["count"] for c in answer["error_counts"]}
    assert counts == {(c, "required field missing"): n for c in dc.REQUIRED_COLUMNS}


async def test_a_valid_body_under_the_inline_size_is_still_applied_on_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = app_with()
    async with running(app) as client:
        service = app.state.service
        monkeypatch.setattr(service, "feed", lambda body: pytest.fail("sent to the pool"))
        response = await client.post("/feed", content=steps_body(["a"], 3), headers=AUTH)
    assert response.status_code == 200 and response.json()["applied"] == 3
    assert response.json()["error_counts"] == []


async def test_a_body_past_the_record_limit_is_413_with_a_hint() -> None:
    async with running(app_with(max_records_per_body=10)) as client:
        over = await client.post("/feed", content=steps_body(["a"], 11), headers=AUTH)
        at = await client.post("/feed", content=steps_body(["b"], 10), headers=AUTH)
        small = await client.post("/feed", content=orjson.dumps([{}] * 11), headers=AUTH)
    assert over.status_code == 413 and small.status_code == 413
    assert "TFT_MAX_RECORDS_PER_BODY" in over.json()["detail"]
    assert at.status_code == 200 and at.json()["applied"] == 10


# --- /predict ------------------------------------------------------------------------


async def test_predict_serves_every_field_from_the_cache() -> None:
    app = app_with()
    async with running(app) as client:
        await client.post("/feed", content=steps_body(["a", "b"], 289), headers=AUTH)
        await client.post("/feed", content=steps_body(["late"], 10, T0 + 279 * 300), headers=AUTH)
        pending = (await client.get("/predict", headers=AUTH)).json()["predictions"]
        assert pending["a"]["forecast_status"] == "pending" and pending["a"]["risk_score"] is None
        assert app.state.service.run_pass() == 2
        body = (await client.get("/predict", headers=AUTH)).json()
    assert body["model"]["kind"] == "seasonal_naive" and body["model"]["last_pass"]["passes"] == 1
    fleet = {"servers": 3, "ready": 2, "forecasts": 2, "silent": 0, "warmup_progress": 67.7}
    assert body["fleet"] == fleet
    entry = body["predictions"]["a"]
    assert set(entry["current"]) == set(dc.METRIC_COLUMNS) and entry["state"] == "healthy"
    assert entry["warmup"] == {"ready": True, "progress": 100.0, "observed": 100.0}
    assert entry["forecast_origin"] == "2025-06-16T15:05:00Z"  # step 287, the last closed
    for label in ("30m", "1h", "8h"):
        assert entry[f"predictions_{label}"]["mem_used_pct"] == 50.0
        assert set(entry["quantiles"][label]) == {"p10", "p50", "p90"}
    assert entry["risk_score"] == 0 and entry["risk_level"] == "healthy"
    assert entry["risk_factors"] == [] and "trajectory" not in entry
    late = body["predictions"]["late"]
    assert late["forecast_status"] == "warming_up" and late["warmup"]["progress"] == 3.1


async def test_predict_filters_servers_and_returns_trajectories() -> None:
    app = app_with()
    async with running(app) as client:
        await client.post("/feed", content=steps_body(["a", "b"], 289), headers=AUTH)
        app.state.service.run_pass()
        response = await client.get(
            "/predict", params={"servers": "b,unknown", "trajectory": "true"}, headers=AUTH
        )
        assert (await client.get("/predict")).status_code == 401
    predictions = response.json()["predictions"]
    assert list(predictions) == ["b"] and response.json()["not_found"] == ["unknown"]
    trajectory = predictions["b"]["trajectory"]
    assert len(trajectory["timestamps"]) == 96 and trajectory["timestamps"][0].endswith("10:00Z")
    assert len(trajectory["p90"]["disk_usage_pct"]) == 96


async def test_predict_takes_repeated_server_parameters_for_names_with_commas() -> None:
    async with running(app_with()) as client:
        await client.post("/feed", content=steps_body(["a,b", "c", "d"], 2), headers=AUTH)
        params = [("server", "a,b"), ("server", "c"), ("server", "zz")]
        repeated = (await client.get("/predict", params=params, headers=AUTH)).json()
        joined = (await client.get("/predict?servers=c,d", headers=AUTH)).json()
        both = await client.get("/predict?servers=d&server=a,b", headers=AUTH)
    assert list(repeated["predictions"]) == ["a,b", "c"] and repeated["not_found"] == ["zz"]
    assert list(joined["predictions"]) == ["c", "d"] and joined["not_found"] == []
    assert set(both.json()["predictions"]) == {"a,b", "d"}


async def test_risk_and_alerts_follow_the_forecast() -> None:
    app = app_with()
    async with running(app) as client:
        await client.post(
            "/feed", content=steps_body(["full"], 289, disk_usage_pct=97.0), headers=AUTH
        )
        await client.post("/feed", content=steps_body(["fine"], 289), headers=AUTH)
        app.state.service.run_pass()
        full = (await client.get("/predict", headers=AUTH)).json()["predictions"]["full"]
        alerts = (await client.get("/alerts", headers=AUTH)).json()
        bad_level = await client.get("/alerts", params={"min_level": "nope"}, headers=AUTH)
    assert full["risk_score"] == 100 and full["risk_level"] == "critical"
    assert full["risk_factors"][0]["metric"] == "disk_usage_pct"
    assert [a["server"] for a in alerts["alerts"]] == ["full"]
    assert alerts["model"]["kind"] == "seasonal_naive"
    assert bad_level.status_code == 422


async def test_a_failing_model_is_reported_not_hidden() -> None:
    app = app_with(Exploding())
    async with running(app) as client:
        await client.post("/feed", content=steps_body(["a"], 289), headers=AUTH)
        with pytest.raises(RuntimeError, match="out of memory"):
            app.state.service.run_pass()
        health = (await client.get("/health")).json()
        predict = (await client.get("/predict", headers=AUTH)).json()
    assert health["status"] == "degraded" and "out of memory" in health["last_pass"]["error"]
    assert predict["model"]["last_pass"]["failures"] == 1
    assert predict["predictions"]["a"]["forecast_status"] == "pending"
    assert app.state.service.buffers.view("dirty").all()  # retried at the next pass


# --- /health, reload, auth settings --------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_health_needs_no_key_and_shows_no_secret(method: str) -> None:
    async with running(app_with()) as client:
        response = await client.request(method, "/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["model_loaded"] is False  # baseline served
    assert KEY not in response.text and body["model"]["kind"] == "seasonal_naive"


async def test_reload_swaps_in_a_tft_and_keeps_serving_on_failure() -> None:
    app = app_with()
    async with running(app) as client:
        await client.post("/feed", content=steps_body(["a"], 289), headers=AUTH)
        app.state.service.run_pass()
        missing = await client.post("/admin/reload-model", json={"model": "nope"}, headers=AUTH)
        outside = await client.post(
            "/admin/reload-model", json={"model": "../README.md"}, headers=AUTH
        )
        assert (await client.get("/predict", headers=AUTH)).json()["fleet"]["forecasts"] == 1
        loaded = await client.post("/admin/reload-model", json={"model": "latest"}, headers=AUTH)
        after = (await client.get("/predict", headers=AUTH)).json()
        unauthorised = await client.post("/admin/reload-model")
    assert missing.status_code == 422 and "nope" in missing.json()["detail"]
    assert missing.json()["serving"]["kind"] == "seasonal_naive"
    assert outside.status_code == 422 and "outside" in outside.json()["detail"]
    assert loaded.status_code == 200 and loaded.json()["model"]["kind"] == "tft"
    assert after["model"]["kind"] == "tft" and after["fleet"]["forecasts"] == 0  # old ones gone
    assert app.state.service.buffers.view("dirty").all()
    assert unauthorised.status_code == 401


async def test_a_model_name_that_is_no_path_is_refused_by_name() -> None:
    """{"model": "a\\u0000b"} answered 500: Path.resolve raised ValueError."""
    async with running(app_with()) as client:
        nul = await client.post("/admin/reload-model", json={"model": "a\u0000b"}, headers=AUTH)
    assert nul.status_code == 422 and nul.json()["detail"].startswith("model: ")
    assert nul.json()["serving"]["kind"] == "seasonal_naive"


async def test_insecure_mode_without_a_key_serves_without_auth() -> None:
    async with running(app_with(api_key=None, insecure_no_auth=True)) as client:
        response = await client.post("/feed", content=steps_body(["a"], 1))
    assert response.status_code == 200


async def test_a_configured_key_is_required_even_with_the_insecure_flag() -> None:
    async with running(app_with(insecure_no_auth=True)) as client:
        assert (await client.post("/feed", content=steps_body(["a"], 1))).status_code == 401


async def test_the_key_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(app_with()) as client:
        await client.post("/feed", content=steps_body(["a"], 2), headers=AUTH)
        await client.post("/feed", content=b"[]", headers={"X-API-Key": KEY + "x"})
    assert KEY not in caplog.text


# --- live accuracy -------------------------------------------------------------------


class LastValuePlusOne(SeasonalNaiveForecaster):
    """A stand-in labelled as a TFT (accuracy is tracked for the TFT only): every step
    forecasts the last value plus one."""

    def __init__(self) -> None:
        super().__init__()
        self.info = {**self.info, "kind": "tft", "name": "last_value_plus_one"}

    def forecast(self, values: np.ndarray, *args: Any) -> np.ndarray:
        point = np.repeat(values[:, -1:] + 1.0, self.horizon, axis=1)
        return np.repeat(point[..., None], 3, axis=-1)


def ramp_body(server: str, first: int, last: int) -> bytes:
    """Steps first..last-1 of a server whose memory rises 0.05 points per step."""
    records = [
        make_record(server, T0 + 300 * k, mem_used_pct=20.0 + 0.05 * k) for k in range(first, last)
    ]
    return orjson.dumps(records)


async def test_predict_and_health_report_live_accuracy() -> None:
    clock = Clock()
    app = app_with(LastValuePlusOne(), clock)
    origins = []
    async with running(app) as client:
        await client.post("/feed", content=ramp_body("a", 0, 289), headers=AUTH)
        for k in range(289, 310):  # one step closes per pass, as in the daemon
            app.state.service.run_pass()
            origins.append(int(app.state.service.cache[0].origin))
            clock.now = T0 + 300 * (k + 1) + 10  # the step just fed is open
            await client.post("/feed", content=ramp_body("a", k, k + 1), headers=AUTH)
        plain = (await client.get("/predict", headers=AUTH)).json()["predictions"]["a"]
        body = (await client.get("/predict", params={"accuracy": "true"}, headers=AUTH)).json()
        health = (await client.get("/health")).json()
    assert "accuracy" not in plain
    accuracy = body["predictions"]["a"]["accuracy"]
    scored = [sum(1 for o in origins if o % 3 == 0 and o + h <= origins[-1]) for h in (6, 12)]
    assert accuracy["scored"] == {"30m": scored[0], "1h": scored[1], "8h": 0} and scored[1] > 0
    assert accuracy["8h"] is None
    short = accuracy["30m"]
    mae, mase = short["mae"], short["mase"]
    assert mae["tft"]["mem_used_pct"] == pytest.approx(0.7, abs=0.02)  # 1 - 6 x 0.05
    assert mae["last_value"]["mem_used_pct"] == pytest.approx(0.3, abs=0.02)
    assert mae["seasonal_naive"]["mem_used_pct"] == pytest.approx(14.4, abs=0.02)
    assert mase["tft"]["mem_used_pct"] == pytest.approx(0.7 / 14.4, abs=0.002)
    assert mase["seasonal_naive"]["mem_used_pct"] == pytest.approx(1.0)
    assert mase["tft"]["cpu_user_pct"] is None  # a flat metric: no seasonal scale
    assert short["tft_better_than_last_value"]["mem_used_pct"] is False
    summary = health["accuracy"]
    assert summary["tracked"] is True and summary["window_h"] == 24
    assert summary["horizons"]["30m"]["scored"] == scored[0]
    assert summary["horizons"]["30m"]["mean_mase"]["last_value"] == pytest.approx(
        0.3 / 14.4, abs=0.002
    )
    assert summary["horizons"]["8h"]["mean_mase"]["tft"] is None


async def test_the_baseline_is_not_scored_and_a_reload_starts_afresh() -> None:
    clock = Clock()
    app = app_with(clock=clock)
    async with running(app) as client:
        await client.post("/feed", content=ramp_body("a", 0, 289), headers=AUTH)
        for k in range(289, 300):
            app.state.service.run_pass()
            clock.now = T0 + 300 * (k + 1) + 10  # the step just fed is open
            await client.post("/feed", content=ramp_body("a", k, k + 1), headers=AUTH)
        health = (await client.get("/health")).json()
        entry = (await client.get("/predict?accuracy=true", headers=AUTH)).json()["predictions"]
    assert health["accuracy"]["tracked"] is False
    assert health["accuracy"]["horizons"]["30m"]["scored"] == 0
    assert entry["a"]["accuracy"] == {
        "scored": {"30m": 0, "1h": 0, "8h": 0},
        **dict.fromkeys(("30m", "1h", "8h")),
    }
    service = app.state.service
    service.swap_forecaster(LastValuePlusOne())
    for k in range(300, 310):
        service.run_pass()
        clock.now = T0 + 300 * (k + 1) + 10  # the step just fed is open
        service.feed(ramp_body("a", k, k + 1))
    assert service.accuracy.report(np.array([0]))[2][0, 0] > 0
    service.swap_forecaster(LastValuePlusOne())
    assert service.accuracy.report(np.array([0]))[2].sum() == 0


async def test_a_baseline_that_beat_the_tft_for_a_day_is_served_when_asked() -> None:
    clock = Clock()
    app = app_with(LastValuePlusOne(), clock, serve_better_method=True)
    async with running(app) as client:
        service = app.state.service
        service.feed(ramp_body("a", 0, 289))
        for k in range(289, 680):  # a day of 8-hour forecasts scored
            service.run_pass()
            clock.now = T0 + 300 * (k + 1) + 10  # the step just fed is open
            service.feed(ramp_body("a", k, k + 1))
        service.run_pass()
        params = {"accuracy": "true"}
        entry = (await client.get("/predict", params=params, headers=AUTH)).json()["predictions"]
        service.serve_better = False
        service.buffers.mark_dirty()
        service.run_pass()
        plain = (await client.get("/predict", headers=AUTH)).json()["predictions"]["a"]
    a = entry["a"]
    flat = [m for m in dc.METRIC_COLUMNS if m != "mem_used_pct"]
    assert a["served_by"] == dict.fromkeys(flat, "last_value")  # the ramp stays the TFT's
    assert a["predictions_8h"]["cpu_user_pct"] == a["current"]["cpu_user_pct"]
    last_closed = a["current"]["mem_used_pct"] - 0.05  # current is the open step's tick
    assert a["predictions_30m"]["mem_used_pct"] == pytest.approx(last_closed + 1)
    assert a["accuracy"]["30m"]["mae"]["tft"]["cpu_user_pct"] == 1.0  # the TFT is still scored
    assert "served_by" not in plain and plain["predictions_8h"]["cpu_user_pct"] == 11.0


# --- the event loop, docs and the schema ---------------------------------------------


async def test_blocking_work_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing a 13 MiB body must not stall /health: every handler's work (but that of
    /feed bodies under INLINE_BODY_BYTES) runs in the thread pool, not the event loop's."""
    app = app_with()
    threads: dict[str, int] = {}
    loop_thread = threading.get_ident()
    async with running(app) as client:
        service = app.state.service
        feed, health = service.feed, views.health

        def spy(name: str, function: Any) -> Any:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                threads[name] = threading.get_ident()
                return function(*args, **kwargs)

            return wrapped

        monkeypatch.setattr(service, "feed", spy("feed", feed))
        monkeypatch.setattr(views, "health", spy("health", health))
        monkeypatch.setattr(views, "predict_parts", spy("predict", views.predict_parts))
        monkeypatch.setattr(views, "alerts", spy("alerts", views.alerts))
        large = steps_body([f"s{i}" for i in range(12)], 250)  # 3,000 records
        assert len(large) > INLINE_BODY_BYTES  # smaller ones cost less than the hop
        assert (await client.post("/feed", content=large, headers=AUTH)).status_code == 200
        await client.get("/health")
        await client.get("/predict", headers=AUTH)
        await client.get("/alerts", headers=AUTH)
    assert set(threads) == {"feed", "health", "predict", "alerts"}
    assert loop_thread not in threads.values()


async def test_docs_are_off_by_default_and_behind_the_key_when_on() -> None:
    async with running(app_with()) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/openapi.json", headers=AUTH)).status_code == 404
    async with running(app_with(docs=True)) as client:
        assert (await client.get("/openapi.json")).status_code == 401
        assert (await client.get("/docs")).status_code == 401
        schema = (await client.get("/openapi.json", headers=AUTH)).json()
    body = schema["paths"]["/feed"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["type"] == "array"
    assert set(body["schema"]["items"]["required"]) == set(dc.REQUIRED_COLUMNS)


async def test_history_needs_the_key_and_names_an_unknown_server() -> None:
    async with running(app_with()) as client:
        await client.post("/feed", content=steps_body(["a"], 3), headers=AUTH)
        assert (await client.get("/history", params={"server": "a"})).status_code == 401
        found = await client.get("/history", params={"server": "a"}, headers=AUTH)
        missing = await client.get("/history", params={"server": "zz"}, headers=AUTH)
        no_name = await client.get("/history", headers=AUTH)
    assert found.status_code == 200 and len(found.json()["timestamps"]) == 3
    assert missing.status_code == 404 and "zz" in missing.json()["detail"]
    assert no_name.status_code == 422
