"""The Dash app: navigation, router, refresh interval, state banner and footer."""

from __future__ import annotations

import hmac
import logging
import time
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

import flask
from dash import Dash, Input, Output, dcc, html

from dashboard.client import DaemonClient, DaemonError
from dashboard.pages import accuracy, alerts, heatmap, overview, server, servers
from dashboard.settings import DashboardSettings
from dashboard.source import Source, banner

log = logging.getLogger(__name__)
PAGES: tuple[ModuleType, ...] = (overview, servers, heatmap, alerts, accuracy, server)
NAV_PAGES: tuple[ModuleType, ...] = (overview, servers, heatmap, alerts, accuracy)
BANNER_STYLES: dict[str, dict[str, str]] = {
    "ok": {"backgroundColor": "#e8f5e9"},
    "warming": {"backgroundColor": "#fff8e1"},
    "error": {"backgroundColor": "#ffebee", "fontWeight": "bold"},
    "auth": {"backgroundColor": "#ffebee", "fontWeight": "bold"},
}


def page_for(pathname: str | None) -> ModuleType | None:
    path = (pathname or "/").rstrip("/") or "/"
    return next((p for p in PAGES if p.PATH == path), None)


def render_page(pathname: str | None, search: str | None) -> Any:
    page = page_for(pathname)
    if page is None:
        return html.P(f"no page at {pathname}")
    return page.layout(dict(parse_qsl((search or "").lstrip("?"))))


def status(source: Source) -> tuple[str, dict[str, str], str]:
    """The banner's text and style, and the footer ("data fetched at ...")."""
    try:
        predict, fetched = source.predict()
    except DaemonError as error:
        text, kind = banner(None, error)
        return text, BANNER_STYLES[kind], f"last try {_clock(time.time())}: no data"
    text, kind = banner(predict, None)
    return text, BANNER_STYLES[kind], f"data fetched at {_clock(fetched)}"


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def root_layout(refresh_seconds: float) -> html.Div:
    nav = [dcc.Link(p.TITLE, href=p.PATH, style={"marginRight": "1em"}) for p in NAV_PAGES]
    return html.Div(
        [
            dcc.Location(id="url"),
            dcc.Interval(id="tick", interval=int(refresh_seconds * 1000)),
            html.H1("TFT fleet monitoring"),
            html.Nav(nav),
            html.Div(id="banner", style={"padding": "0.5em", "margin": "0.5em 0"}),
            html.Div(id="page"),
            html.Footer(id="footer", style={"marginTop": "2em", "color": "#666"}),
        ],
        style={"fontFamily": "sans-serif", "margin": "1em"},
    )


def create_app(settings: DashboardSettings, client: DaemonClient | None = None) -> Dash:
    """The app; client defaults to one built from settings (the key stays server-side)."""
    if client is None:
        key = settings.api_key.get_secret_value() if settings.api_key else None
        client = DaemonClient(settings.daemon_url, key, settings.request_timeout_s)
    source = Source(client, ttl=max(1.0, settings.refresh_seconds / 2))
    app = Dash(__name__, title="TFT monitoring", suppress_callback_exceptions=True)
    app.layout = root_layout(settings.refresh_seconds)
    _register(app, source, settings)
    if settings.basic_auth_users:
        _basic_auth(app, {u: p.get_secret_value() for u, p in settings.basic_auth_users.items()})
    return app


def _register(app: Dash, source: Source, settings: DashboardSettings) -> None:
    @app.callback(Output("page", "children"), Input("url", "pathname"), Input("url", "search"))
    def _route(pathname: str | None, search: str | None) -> Any:
        return render_page(pathname, search)

    @app.callback(
        Output("banner", "children"),
        Output("banner", "style"),
        Output("footer", "children"),
        Input("tick", "n_intervals"),
    )
    def _status(_: int) -> tuple[str, dict[str, str], str]:
        return status(source)

    for page in (overview, servers, alerts, accuracy, server):
        page.register(app, source)
    heatmap.register(app, source, settings.heatmap_max_servers)


def _basic_auth(app: Dash, users: dict[str, str]) -> None:
    """HTTP basic auth in front of every route of the Flask server."""

    @app.server.before_request
    def _check() -> flask.Response | None:
        auth = flask.request.authorization
        expected = users.get(auth.username or "") if auth else None
        given = (auth.password or "") if auth else ""
        if expected is not None and hmac.compare_digest(expected.encode(), given.encode()):
            return None
        return flask.Response(
            "authentication required", 401, {"WWW-Authenticate": 'Basic realm="TFT"'}
        )
