"""Server table: every server, sortable and filterable; a name opens the server page."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, html

from dashboard import tables
from dashboard.client import DaemonError
from dashboard.source import Source
from dashboard.widgets import data_table

PATH = "/servers"
TITLE = "Servers"


def columns() -> list[dict[str, Any]]:
    cols: list[dict[str, Any]] = [
        {"name": "server", "id": "link", "presentation": "markdown"},
        {"name": "state", "id": "state"},
        {"name": "forecast", "id": "forecast_status"},
        {"name": "risk", "id": "risk_score", "type": "numeric"},
        {"name": "level", "id": "risk_level"},
    ]
    cols += [{"name": m, "id": m, "type": "numeric"} for m in tables.KEY_METRICS]
    for horizon in ("30m", "8h"):
        cols += [
            {"name": f"{m} p50 {horizon}", "id": f"{m}_{horizon}", "type": "numeric"}
            for m in tables.FORECAST_METRICS
        ]
    return cols


STALE_STYLE = [
    {"if": {"filter_query": '{forecast_status} = "stale"'}, "backgroundColor": "#eeeeee"},
    {"if": {"filter_query": '{risk_level} = "critical"'}, "color": "#d62728"},
    {"if": {"filter_query": '{risk_level} = "warning"'}, "color": "#ff7f0e"},
]


def layout(query: dict[str, str]) -> html.Div:
    return html.Div(
        [
            data_table(
                id="servers-table",
                columns=columns(),
                sort_action="native",
                filter_action="native",
                page_size=50,
                persistence=True,
                persisted_props=["sort_by", "filter_query", "page_current"],
                style_data_conditional=STALE_STYLE,
                markdown_options={"link_target": "_self"},
            )
        ]
    )


def update(source: Source) -> list[dict[str, Any]]:
    try:
        predict, _ = source.predict()
    except DaemonError:
        return []
    return tables.server_rows(predict)


def register(app: Dash, source: Source) -> None:
    @app.callback(Output("servers-table", "data"), Input("tick", "n_intervals"))
    def _update(_: int) -> list[dict[str, Any]]:
        return update(source)
