"""Risk heatmap: servers x risk metrics, coloured by risk points (the top N servers)."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from dashboard import figures
from dashboard.client import DaemonError
from dashboard.source import Source

PATH = "/heatmap"
TITLE = "Heatmap"


def layout(query: dict[str, str]) -> html.Div:
    return html.Div([dcc.Graph(id="heatmap-graph")])


def update(source: Source, limit: int) -> Any:
    try:
        predict, _ = source.predict()
    except DaemonError:
        predict = {}
    return figures.heatmap_figure(predict, limit)


def register(app: Dash, source: Source, limit: int = 200) -> None:
    @app.callback(Output("heatmap-graph", "figure"), Input("tick", "n_intervals"))
    def _update(_: int) -> Any:
        return update(source, limit)
