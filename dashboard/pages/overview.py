"""Fleet overview: environment status, readiness, model, risk distribution, top risks."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from dashboard import figures, tables
from dashboard.client import DaemonError
from dashboard.source import Source
from dashboard.widgets import grid, level_rules

PATH = "/"
TITLE = "Overview"
TOP_COLUMNS = ("server", "risk_score", "risk_level", "reason")
FALLBACK_STYLE = {"fontWeight": "bold", "color": figures.LEVEL_COLOURS["critical"]}


def layout(query: dict[str, str]) -> html.Div:
    return html.Div(
        [
            html.Div(id="ov-status"),
            dcc.Graph(id="ov-distribution"),
            html.H3("Top risk"),
            html.P(id="ov-top-note"),
            grid(
                id="ov-top",
                columns=[{"name": c, "id": c} for c in TOP_COLUMNS],
                row_rules=level_rules("risk_level"),
            ),
        ]
    )


def status_block(predict: dict[str, Any]) -> html.Div:
    status = tables.environment_status(predict)
    model, fallback = tables.model_text(predict.get("model", {}))
    model_line = html.P(
        f"Model: {model}" + ("  (FALLBACK, not the TFT)" if fallback else ""),
        style=FALLBACK_STYLE if fallback else {},
    )
    return html.Div(
        [
            html.H2(
                f"Environment status: {status}",
                style={"color": figures.LEVEL_COLOURS.get(status, "#000")},
            ),
            html.P(tables.readiness(predict)),
            model_line,
        ]
    )


NO_RISK = "No server has a risk score above 0."


def update(source: Source) -> tuple[Any, Any, str, list[dict[str, Any]]]:
    try:
        predict, _ = source.predict()
    except DaemonError:
        return html.Div(), figures.risk_distribution_figure({}), "", []
    top = tables.top_risk_rows(predict)
    return (
        status_block(predict),
        figures.risk_distribution_figure(predict),
        "" if top else NO_RISK,
        top,
    )


def register(app: Dash, source: Source) -> None:
    @app.callback(
        Output("ov-status", "children"),
        Output("ov-distribution", "figure"),
        Output("ov-top-note", "children"),
        Output("ov-top", "rowData"),
        Input("tick", "n_intervals"),
    )
    def _update(_: int) -> tuple[Any, Any, str, list[dict[str, Any]]]:
        return update(source)
