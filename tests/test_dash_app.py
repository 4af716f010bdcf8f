"""dash_app.py and dashboard/layout.py + pages: the app builds and every page renders
from a fake daemon (httpx.MockTransport), without a browser or a running daemon."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

import dash_app
from dashboard import figures
from dashboard.client import DaemonClient
from dashboard.layout import create_app, page_for, render_page, status
from dashboard.pages import accuracy, alerts, heatmap, overview, server, servers
from dashboard.settings import DashboardSettings
from dashboard.source import Source
from tests.dashboard_fixtures import KEY, transport

SCORES = {"tft": 0.5, "last_value": 0.9, "seasonal_naive": 1.1}


def settings(**extra: object) -> DashboardSettings:
    return DashboardSettings(_env_file=None, api_key=KEY, **extra)


def source(key: str | None = KEY) -> Source:
    return Source(DaemonClient("http://daemon:8000", key, transport=transport()), ttl=60)


def test_parse_args_accepts_spec_flags() -> None:
    args = dash_app.parse_args(
        ["--server.port", "8502", "--server.fileWatcherType", "none", "--server.runOnSave", "false"]
    )
    built = dash_app.settings_from(args)
    assert built.port == 8502
    args = dash_app.parse_args(["--daemon-url", "http://x:9/", "--refresh-seconds", "5"])
    assert dash_app.settings_from(args).daemon_url == "http://x:9"
    assert dash_app.settings_from(args).refresh_seconds == 5


def test_app_serves_layout_without_the_key() -> None:
    client = DaemonClient("http://daemon:8000", KEY, transport=transport())
    app = create_app(settings(), client=client)
    web = app.server.test_client()
    assert web.get("/").status_code == 200
    layout = web.get("/_dash-layout")
    assert layout.status_code == 200 and KEY not in layout.get_data(as_text=True)
    outputs = " ".join(app.callback_map)
    for wanted in ("page.children", "banner.children", "servers-table.rowData", "heatmap-graph"):
        assert wanted in outputs


def test_basic_auth() -> None:
    app = create_app(settings(basic_auth_users={"ops": "pw"}), client=source().client)
    web = app.server.test_client()
    assert web.get("/").status_code == 401
    good = base64.b64encode(b"ops:pw").decode()
    assert web.get("/", headers={"Authorization": f"Basic {good}"}).status_code == 200
    bad = base64.b64encode(b"ops:nope").decode()
    assert web.get("/", headers={"Authorization": f"Basic {bad}"}).status_code == 401


@pytest.mark.parametrize("path", ["/", "/servers", "/heatmap", "/alerts", "/accuracy", "/server"])
def test_every_page_renders(path: str) -> None:
    page = render_page(path, "?name=ppdb001")
    assert json.dumps(page.to_plotly_json(), default=str)
    assert page_for(path) is not None


def test_unknown_page() -> None:
    assert "no page" in render_page("/nope", "").children


def test_status_banner_states() -> None:
    text, style, footer = status(source())
    assert text.startswith("warming up 2/3") and footer.startswith("data fetched at")
    text, style, _ = status(source(key="wrong"))
    assert text.startswith("authentication failed") and style["fontWeight"] == "bold"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    down = Source(DaemonClient("http://gone:8000", KEY, transport=httpx.MockTransport(refuse)), 1)
    text, _, footer = status(down)
    assert "daemon not connected (trying http://gone:8000)" in text and "no data" in footer


def test_page_updates() -> None:
    src = source()
    block, fig, note, top = overview.update(src)
    assert "critical" in json.dumps(block.to_plotly_json(), default=str)
    assert top[0]["server"] == "ppdb001" and fig.data and note == ""
    assert len(servers.update(src)) == 3
    assert list(heatmap.update(src, 200).data[0].y)[0] == "ppdb001"
    count, rows = alerts.update(src)
    assert count.startswith("2 active alerts") and rows[1]["server"] == "ppold9"
    note, rows, metric_rows, choices, server_rows = accuracy.update(src, "ppdb001")
    assert note == "" and rows == [{"horizon": "30m", **SCORES}]
    assert choices == ["ppdb001"] and metric_rows == server_rows
    assert server_rows[0]["metric"] == "mem_used_pct" and server_rows[0]["30m tft"] == 0.5
    assert accuracy.update(src, "ppweb002")[4] == []


def test_accuracy_page_says_why_it_is_empty() -> None:
    client = DaemonClient("http://daemon:8000", KEY, transport=transport())
    client.predict = lambda **_: {"predictions": {}}  # nothing scored yet
    note, rows, *_ = accuracy.update(Source(client, ttl=60))
    assert note == accuracy.NOT_YET and rows == []


def test_server_page_update() -> None:
    summary, factors, *charts = server.update(source(), "ppdb001")
    assert len(charts) == len(figures.CHART_METRICS)
    assert "2 h 10 min" in factors[0].children
    assert summary[1].children.href == "/accuracy?server=ppdb001"
    mem = charts[figures.CHART_METRICS.index("mem_used_pct")]
    assert [t.name for t in mem.data] == ["history", None, "p10-p90", "forecast p50"]
    summary, factors, *charts = server.update(source(), "nosuch")
    assert "does not know" in summary[0].children and factors == []


def test_pages_survive_a_daemon_that_is_down() -> None:
    down = source(key=None)
    assert overview.update(down)[2:] == ("", [])
    assert accuracy.update(down)[0].startswith("authentication failed")
    assert servers.update(down) == []
    assert alerts.update(down)[0].startswith("authentication failed")


def test_server_page_leads_with_the_most_likely_trouble() -> None:
    entry = {"state": "healthy", "risk_score": 55, "risk_level": "warning"}
    entry["trouble"] = {"metric": "cpu_used_pct", "1h": 0.1, "8h": 0.62}
    lines = server.summary("ppweb001", entry, "")
    assert lines[0].children == "cpu_used_pct: critical within 1 h: 10 %, within 8 h: 62 %"
    assert "risk 55 warning" in lines[1].children
