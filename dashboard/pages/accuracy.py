"""Accuracy: the TFT against last value and seasonal naive (mean MASE, fleet-wide)."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, html

from dashboard import tables
from dashboard.client import DaemonError
from dashboard.source import Source
from dashboard.widgets import data_table

PATH = "/accuracy"
TITLE = "Accuracy"
NOT_YET = (
    "Accuracy is not available yet: the daemon scores a forecast only when its target "
    "step has closed (30 min after the first forecasts for the 30 min horizon, 8 h for "
    "8 h), and only for a TFT (not with --baseline)."
)


def layout(query: dict[str, str]) -> html.Div:
    return html.Div(
        [
            html.P(
                "Mean MASE over every (server, metric) scored; lower is better, seasonal "
                "naive scores about 1."
            ),
            html.P(id="accuracy-note"),
            data_table(
                id="accuracy-table",
                columns=[{"name": c, "id": c} for c in ("horizon", *tables.METHODS)],
            ),
        ]
    )


def update(source: Source) -> tuple[str, list[dict[str, Any]]]:
    try:
        predict = source.client.predict(accuracy=True)
    except DaemonError as error:
        return str(error), []
    rows = tables.accuracy_rows(predict)
    return ("" if rows else NOT_YET), rows


def register(app: Dash, source: Source) -> None:
    @app.callback(
        Output("accuracy-note", "children"),
        Output("accuracy-table", "data"),
        Input("tick", "n_intervals"),
    )
    def _update(_: int) -> tuple[str, list[dict[str, Any]]]:
        return update(source)
