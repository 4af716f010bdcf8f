"""The dashboard's only way to the daemon: an httpx client that sends X-API-Key.

The key stays in this process; the browser only ever talks to the Dash server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger(__name__)


class DaemonError(Exception):
    """Any failure to get an answer from the daemon (the message says what to do)."""


class DaemonUnreachable(DaemonError):
    def __init__(self, url: str, reason: str = "") -> None:
        self.url = url
        detail = f" ({reason})" if reason else ""
        super().__init__(
            f"daemon not connected (trying {url}){detail}: start tft_inference_daemon.py "
            "or pass --daemon-url / TFT_DASHBOARD_DAEMON_URL"
        )


class AuthenticationFailed(DaemonError):
    def __init__(self, status: int) -> None:
        self.status = status
        what = "no API key sent" if status == 401 else "the API key was refused"
        super().__init__(
            f"authentication failed ({status}, {what}): set TFT_API_KEY (environment or "
            ".env) to the daemon's key"
        )


class ServerNotFound(DaemonError):
    def __init__(self, server: str) -> None:
        self.server = server
        super().__init__(f"the daemon does not know the server {server!r}")


class DaemonClient:
    """Typed GETs on the daemon's API; every call raises a DaemonError on failure."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: float = 10.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def predict(
        self, trajectory: bool = False, servers: list[str] | None = None, accuracy: bool = False
    ) -> dict[str, Any]:
        params: dict[str, str] = {}
        if trajectory:
            params["trajectory"] = "true"
        if accuracy:
            params["accuracy"] = "true"
        if servers:
            params["servers"] = ",".join(servers)
        return self._get("/predict", params)

    def alerts(self, min_level: str = "watch") -> dict[str, Any]:
        return self._get("/alerts", {"min_level": min_level})

    def health(self) -> dict[str, Any]:
        return self._get("/health", {})

    def history(self, server: str) -> dict[str, Any]:
        return self._get("/history", {"server": server}, not_found=ServerNotFound(server))

    def close(self) -> None:
        self._http.close()

    def _get(
        self, path: str, params: dict[str, str], not_found: DaemonError | None = None
    ) -> dict[str, Any]:
        try:
            response = self._http.get(path, params=params)
        except httpx.TransportError as error:
            log.warning("GET %s%s failed: %s", self.base_url, path, error)
            raise DaemonUnreachable(self.base_url, type(error).__name__) from error
        if response.status_code in (401, 403):
            raise AuthenticationFailed(response.status_code)
        if response.status_code == 404 and not_found is not None:
            raise not_found
        if response.status_code != 200:
            raise DaemonError(f"{path} answered {response.status_code}: {response.text[:200]}")
        return response.json()


class Cached:
    """One call's answer, reused for ttl seconds (so the banner and the page of one
    refresh share one /predict); errors are not cached."""

    def __init__(self, call: Callable[[], dict[str, Any]], ttl: float) -> None:
        self._call, self._ttl = call, ttl
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._at = float("-inf")

    def get(self) -> tuple[dict[str, Any], float]:
        """The answer and the wall time it was fetched."""
        with self._lock:
            if self._value is None or time.monotonic() - self._at > self._ttl:
                self._value = self._call()
                self._at = time.monotonic()
                self._fetched = time.time()
            return self._value, self._fetched
