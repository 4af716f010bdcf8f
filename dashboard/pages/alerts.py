"""Alerts: the active alerts from /alerts (watch and above)."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, html

from dashboard import tables
from dashboard.client import DaemonError
from dashboard.source import Source
from dashboard.widgets import data_table

PATH = "/alerts"
TITLE = "Alerts"
COLUMNS = ("level", "server", "risk_score", "reason", "forecast_origin", "since", "last_seen")
LEVEL_STYLE = [
    {"if": {"filter_query": f'{{level}} = "{level}"'}, "color": colour}
    for level, colour in (("critical", "#d62728"), ("warning", "#ff7f0e"))
]


def layout(query: dict[str, str]) -> html.Div:
    return html.Div(
        [
            html.P(id="alerts-count"),
            data_table(
                id="alerts-table",
                columns=[{"name": c, "id": c} for c in COLUMNS],
                sort_action="native",
                filter_action="native",
                page_size=50,
                persistence=True,
                persisted_props=["sort_by", "filter_query", "page_current"],
                style_cell={"textAlign": "left", "whiteSpace": "normal"},
                style_data_conditional=LEVEL_STYLE,
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
        Output("alerts-table", "data"),
        Input("tick", "n_intervals"),
    )
    def _update(_: int) -> tuple[str, list[dict[str, Any]]]:
        return update(source)
