"""Alerts: the active alerts from /alerts (watch and above)."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, html

from dashboard import tables
from dashboard.client import DaemonError
from dashboard.source import Source
from dashboard.widgets import grid, level_rules

PATH = "/alerts"
TITLE = "Alerts"
COLUMNS = ("level", "server", "risk_score", "reason", "forecast_origin", "since", "last_seen")


def layout(query: dict[str, str]) -> html.Div:
    return html.Div(
        [
            html.P(id="alerts-count"),
            grid(
                id="alerts-table",
                columns=[{"name": c, "id": c} for c in COLUMNS],
                page_size=50,
                row_rules=level_rules("level"),
            ),
        ]
    )


def update(source: Source) -> tuple[str, list[dict[str, Any]]]:
    try:
        rows = tables.alert_rows(source.client.alerts(min_level="watch"))
    except DaemonError as error:
        return str(error), []
    return f"{len(rows)} active alerts (watch and above)", rows


def register(app: Dash, source: Source) -> None:
    @app.callback(
        Output("alerts-count", "children"),
        Output("alerts-table", "rowData"),
        Input("tick", "n_intervals"),
    )
    def _update(_: int) -> tuple[str, list[dict[str, Any]]]:
        return update(source)
