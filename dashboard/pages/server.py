"""Server detail: per metric, history joined to the 8 h forecast with its band and
thresholds, and the risk factors in words."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from dash import Dash, Input, Output, dcc, html

from dashboard import figures, tables
from dashboard.client import DaemonError
from dashboard.source import Source

PATH = "/server"
TITLE = "Server"


def chart_id(metric: str) -> str:
    return f"srv-chart-{metric}"


def layout(query: dict[str, str]) -> html.Div:
    name = query.get("name", "")
    return html.Div(
        [
            dcc.Store(id="srv-name", data=name),
            html.H2(name or "no server chosen: open one from the server table"),
            html.Div(id="srv-summary"),
            html.Ul(id="srv-factors"),
            *[dcc.Graph(id=chart_id(m)) for m in figures.CHART_METRICS],
        ]
    )


def fetch(source: Source, name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str]:
    """The server's /predict entry (with trajectory), its /history and a problem line."""
    try:
        predict = source.client.predict(trajectory=True, servers=[name])
    except DaemonError as error:
        return None, None, str(error)
    entry = tables.entries(predict).get(name)
    if entry is None:
        return None, None, f"the daemon does not know the server {name!r}"
    try:
        history = source.client.history(name)
    except DaemonError as error:  # /history is new: the forecast alone still helps
        return entry, None, f"history not available: {error}"
    return entry, history, ""


def summary(name: str, entry: dict[str, Any] | None, problem: str) -> list[Any]:
    if entry is None:
        return [html.P(problem)]
    text = (
        f"state {entry.get('state')} · forecast {entry.get('forecast_status')} "
        f"(origin {entry.get('forecast_origin')}) · risk {entry.get('risk_score')} "
        f"{entry.get('risk_level')} · last seen {entry.get('last_seen')}"
    )
    accuracy = dcc.Link("its forecast accuracy", href=f"/accuracy?server={quote(name, safe='')}")
    verdict = [html.P(tables.trouble_text(entry["trouble"]))] if entry.get("trouble") else []
    return [*verdict, html.P(text), html.P(accuracy)] + ([html.P(problem)] if problem else [])


def update(source: Source, name: str) -> tuple[Any, ...]:
    entry, history, problem = fetch(source, name) if name else (None, None, "")
    factors = [html.Li(tables.factor_text(f)) for f in (entry or {}).get("risk_factors") or []]
    trajectory = (entry or {}).get("trajectory")
    charts = [figures.forecast_figure(m, history, trajectory, name) for m in figures.CHART_METRICS]
    return (summary(name, entry, problem), factors, *charts)


def register(app: Dash, source: Source) -> None:
    @app.callback(
        Output("srv-summary", "children"),
        Output("srv-factors", "children"),
        *[Output(chart_id(m), "figure") for m in figures.CHART_METRICS],
        Input("tick", "n_intervals"),
        Input("srv-name", "data"),
    )
    def _update(_: int, name: str) -> tuple[Any, ...]:
        return update(source, name or "")
