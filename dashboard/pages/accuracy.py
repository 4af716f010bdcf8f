"""Accuracy: the TFT against last value and seasonal naive (mean MASE), fleet-wide by
horizon and by metric, and for one chosen server by metric."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from dashboard import tables
from dashboard.client import DaemonError
from dashboard.source import Source
from dashboard.widgets import grid

PATH = "/accuracy"
TITLE = "Accuracy"
NOT_YET = (
    "Accuracy is not available yet: the daemon scores a forecast only when its target "
    "step has closed (30 min after the first forecasts for the 30 min horizon, 8 h for "
    "8 h), and only for a TFT (not with --baseline)."
)
METRIC_COLUMNS = [{"name": "metric", "id": "metric"}] + [
    {"name": c, "id": c} for c in tables.accuracy_metric_columns()
]


def layout(query: dict[str, str]) -> html.Div:
    return html.Div(
        [
            html.P(
                "Mean MASE over every (server, metric) scored; lower is better, seasonal "
                "naive scores about 1. The TFT earns its place where it scores below last "
                "value and seasonal naive."
            ),
            html.P(id="accuracy-note"),
            grid(
                id="accuracy-table",
                columns=[{"name": c, "id": c} for c in ("horizon", *tables.METHODS)],
            ),
            html.H3("Fleet, by metric"),
            grid(id="accuracy-metrics", columns=METRIC_COLUMNS),
            html.H3("One server, by metric"),
            dcc.Dropdown(
                id="accuracy-server",
                value=query.get("server"),
                placeholder="choose a server",
                persistence=True,
            ),
            grid(id="accuracy-server-metrics", columns=METRIC_COLUMNS),
        ]
    )


def update(source: Source, server: str | None = None) -> tuple[Any, ...]:
    """The note, the horizon rows, the fleet's metric rows, the server choices and the
    chosen server's metric rows."""
    try:
        predict = source.client.predict(accuracy=True)
    except DaemonError as error:
        return str(error), [], [], [], []
    rows = tables.accuracy_rows(predict)
    blocks = [entry.get("accuracy") for entry in tables.entries(predict).values()]
    chosen = (tables.entries(predict).get(server or "") or {}).get("accuracy")
    return (
        "" if rows else NOT_YET,
        rows,
        tables.accuracy_metric_rows(blocks),
        tables.scored_servers(predict),
        tables.accuracy_metric_rows([chosen]) if chosen else [],
    )


def register(app: Dash, source: Source) -> None:
    @app.callback(
        Output("accuracy-note", "children"),
        Output("accuracy-table", "rowData"),
        Output("accuracy-metrics", "rowData"),
        Output("accuracy-server", "options"),
        Output("accuracy-server-metrics", "rowData"),
        Input("tick", "n_intervals"),
        Input("accuracy-server", "value"),
    )
    def _update(_: int, server: str | None) -> tuple[Any, ...]:
        return update(source, server)
