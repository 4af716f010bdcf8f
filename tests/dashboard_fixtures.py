"""Canned daemon answers for the dashboard's tests, and a MockTransport serving them."""

from __future__ import annotations

import json
from typing import Any

import httpx

from data_contract import METRIC_COLUMNS

KEY = "test-key"
STEPS = 96


def _server(score: int, level: str, factors: list[dict[str, Any]], status: str = "ok") -> dict:
    current = dict.fromkeys(METRIC_COLUMNS, 10.0) | {"mem_used_pct": 80.0, "cpu_idle_pct": 70.0}
    return {
        "current": current,
        "state": "healthy",
        "last_seen": "2026-12-06T03:00:00Z",
        "warmup": {"ready": True, "progress": 100.0, "observed": 100.0},
        "forecast_status": status,
        "forecast_origin": "2026-12-06T03:00:00Z",
        "predictions_30m": {"mem_used_pct": 81.0, "disk_usage_pct": 50.0},
        "predictions_1h": {"mem_used_pct": 82.0},
        "predictions_8h": {"mem_used_pct": 96.0, "disk_usage_pct": 51.0},
        "risk_score": score,
        "risk_level": level,
        "risk_factors": factors,
    }


MEM_FACTOR = {
    "metric": "mem_used_pct",
    "severity": "critical",
    "threshold": 95.0,
    "basis": "p50",
    "eta_minutes": 130,
    "value": 95.4,
    "points": 88,
}


def predict_body() -> dict[str, Any]:
    return {
        "timestamp": "2026-12-06T03:01:00Z",
        "model": {"kind": "tft", "name": "tft-2026-12-05"},
        "fleet": {"servers": 3, "ready": 2, "forecasts": 2, "silent": 0, "warmup_progress": 90.0},
        "predictions": {
            "ppdb001": _server(88, "critical", [MEM_FACTOR]),
            "ppweb002": _server(0, "healthy", []),
            "ppml003": _server(0, "healthy", [], status="warming_up"),
        },
    }


def trajectory() -> dict[str, Any]:
    times = [f"2026-12-06T{3 + (5 * k) // 60:02d}:{(5 * k) % 60:02d}:00Z" for k in range(1, 97)]
    ramp = {m: [80.0 + k * 0.2 for k in range(STEPS)] for m in METRIC_COLUMNS}
    shift = {d: {m: [v + d for v in vs] for m, vs in ramp.items()} for d in (-5.0, 5.0)}
    return {"timestamps": times, "p10": shift[-5.0], "p50": ramp, "p90": shift[5.0]}


def history_body(server: str) -> dict[str, Any]:
    times = [f"2026-12-06T02:{m:02d}:00Z" for m in range(0, 60, 5)]
    values = {m: [70.0 + i for i in range(len(times))] for m in METRIC_COLUMNS}
    values["mem_used_pct"][3] = None
    return {"server": server, "step_seconds": 300, "timestamps": times, "values": values}


def accuracy_block() -> dict[str, Any]:
    """One server's /predict?accuracy=true block: 30 min scored, the longer horizons not."""
    mase = {"tft": {"mem_used_pct": 0.5}, "last_value": {"mem_used_pct": 0.9}}
    mase["seasonal_naive"] = {"mem_used_pct": 1.1}
    return {"scored": {"30m": 12, "1h": 0, "8h": 0}, "30m": {"mase": mase}, "1h": None, "8h": None}


def alerts_body() -> dict[str, Any]:
    alert = {"server": "ppdb001", "kind": "risk", "level": "critical", "risk_score": 88}
    alert |= {"factors": [MEM_FACTOR], "forecast_origin": "2026-12-06T03:00:00Z"}
    alert |= {"last_seen": "2026-12-06T03:00:10Z", "since": "2026-12-06T02:40:00Z"}
    silent = {"server": "ppold9", "kind": "silent", "level": "warning", "risk_score": None}
    silent |= {"factors": [], "forecast_origin": None, "last_seen": "x", "since": "y"}
    return {"alerts": [alert, silent], "model": {}, "fleet": {}}


def handler(request: httpx.Request) -> httpx.Response:
    """A fake daemon: checks the key, answers /predict, /alerts, /health, /history."""
    key = request.headers.get("X-API-Key")
    if key is None:
        return httpx.Response(401, json={"detail": "missing key"})
    if key != KEY:
        return httpx.Response(403, json={"detail": "wrong key"})
    path, params = request.url.path, request.url.params
    if path == "/predict":
        body = predict_body()
        if params.get("trajectory") == "true":
            for entry in body["predictions"].values():
                entry["trajectory"] = trajectory()
        if params.get("accuracy") == "true":
            body["predictions"]["ppdb001"]["accuracy"] = accuracy_block()
        if params.get("servers"):
            wanted = params["servers"].split(",")
            body["predictions"] = {n: s for n, s in body["predictions"].items() if n in wanted}
        return httpx.Response(200, content=json.dumps(body))
    if path == "/alerts":
        return httpx.Response(200, json=alerts_body())
    if path == "/health":
        return httpx.Response(200, json={"status": "ok"})
    if path == "/history":
        server = params.get("server", "")
        if server not in predict_body()["predictions"]:
            return httpx.Response(404, json={"detail": "unknown server"})
        return httpx.Response(200, json=history_body(server))
    return httpx.Response(404)


def transport() -> httpx.MockTransport:
    return httpx.MockTransport(handler)
