"""What the pages read: the client, with one cached /predict shared by a refresh."""

from __future__ import annotations

from typing import Any

from dashboard import tables
from dashboard.client import AuthenticationFailed, Cached, DaemonClient, DaemonError


class Source:
    """The daemon client and a /predict reused for ttl seconds."""

    def __init__(self, client: DaemonClient, ttl: float) -> None:
        self.client = client
        self._predict = Cached(client.predict, ttl)

    def predict(self) -> tuple[dict[str, Any], float]:
        """/predict (without trajectories) and when it was fetched; raises DaemonError."""
        return self._predict.get()


def banner(predict: dict[str, Any] | None, error: DaemonError | None) -> tuple[str, str]:
    """The state line above every page and its kind: error, auth, warming or ok."""
    if isinstance(error, AuthenticationFailed):
        return str(error), "auth"
    if error is not None:
        return str(error), "error"
    fleet = (predict or {}).get("fleet", {})
    total, ready = fleet.get("servers", 0), fleet.get("ready", 0)
    if not total:
        return "connected: no servers have reported yet", "warming"
    if ready < total:
        return f"warming up {ready}/{total} ({fleet.get('warmup_progress', 0):.0f} %)", "warming"
    return tables.readiness(predict or {}), "ok"
