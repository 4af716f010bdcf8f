"""dashboard/client.py against a fake daemon (httpx.MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from dashboard.client import (
    AuthenticationFailed,
    Cached,
    DaemonClient,
    DaemonError,
    DaemonUnreachable,
    ServerNotFound,
)
from tests.dashboard_fixtures import KEY, transport


def client(key: str | None = KEY) -> DaemonClient:
    return DaemonClient("http://daemon:8000/", key, 5.0, transport=transport())


def test_predict_sends_key_and_params() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"predictions": {}})

    c = DaemonClient("http://d:1", KEY, transport=httpx.MockTransport(record))
    c.predict(trajectory=True, servers=["a", "b"], accuracy=True)
    assert seen[0].headers["X-API-Key"] == KEY
    assert seen[0].url.params["servers"] == "a,b"
    assert seen[0].url.params["trajectory"] == "true"
    assert seen[0].url.params["accuracy"] == "true"


def test_endpoints_answer() -> None:
    c = client()
    assert set(c.predict()["predictions"]) == {"ppdb001", "ppweb002", "ppml003"}
    assert "trajectory" in c.predict(trajectory=True, servers=["ppdb001"])["predictions"]["ppdb001"]
    assert c.alerts()["alerts"][0]["server"] == "ppdb001"
    assert c.health()["status"] == "ok"
    assert c.history("ppdb001")["step_seconds"] == 300


def test_unknown_server_history() -> None:
    with pytest.raises(ServerNotFound, match="nosuch"):
        client().history("nosuch")


@pytest.mark.parametrize(("key", "status"), [(None, 401), ("wrong", 403)])
def test_authentication_failed(key: str | None, status: int) -> None:
    with pytest.raises(AuthenticationFailed, match="TFT_API_KEY") as caught:
        client(key).predict()
    assert caught.value.status == status


def test_unreachable_names_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    c = DaemonClient("http://nowhere:8000", KEY, transport=httpx.MockTransport(refuse))
    with pytest.raises(DaemonUnreachable, match=r"trying http://nowhere:8000"):
        c.health()


def test_server_error_is_daemon_error() -> None:
    c = DaemonClient("http://d", KEY, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    with pytest.raises(DaemonError, match="500"):
        c.predict()


def test_cached_reuses_answer_and_not_errors() -> None:
    calls = []

    def call() -> dict:
        calls.append(1)
        if len(calls) == 1:
            raise DaemonError("down")
        return {"n": len(calls)}

    cached = Cached(call, ttl=60)
    with pytest.raises(DaemonError):
        cached.get()
    first, fetched = cached.get()
    assert cached.get()[0] is first and fetched > 0
    assert len(calls) == 2
