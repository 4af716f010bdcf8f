"""Server table: every server, sortable and filterable; a name opens the server page."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, html

from dashboard import tables
from dashboard.client import DaemonError
from dashboard.source import Source
from dashboard.widgets import grid, level_rules

PATH = "/servers"
TITLE = "Servers"


def columns() -> list[dict[str, Any]]:
    cols: list[dict[str, Any]] = [
        {"name": "server", "id": "link", "markdown": True},
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


ROW_RULES = [
    ("params.data && params.data.forecast_status === 'stale'", {"backgroundColor": "#eeeeee"}),
    *level_rules("risk_level"),
]


def layout(query: dict[str, str]) -> html.Div:
    return html.Div(
        [
            grid(
                id="servers-table",
                columns=columns(),
                page_size=50,
                row_rules=ROW_RULES,
                row_id="server",
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
    @app.callback(Output("servers-table", "rowData"), Input("tick", "n_intervals"))
    def _update(_: int) -> list[dict[str, Any]]:
        return update(source)
