"""Pure functions from the daemon's JSON to plotly figures (no Dash, no I/O)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from dashboard import tables
from dashboard.colours import LEVEL_COLOURS
from risk import LEVEL_NAMES, RISK_METRICS, RISK_SOURCES, RISK_THRESHOLDS

# Charted on the server page: the risk metrics (load per core needs core counts the
# dashboard does not have, so load_average is charted without threshold lines).
CHART_METRICS: tuple[str, ...] = tuple(m for m in RISK_METRICS if m != "load_per_core") + (
    "load_average",
)


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure(layout={"title": title})
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def risk_distribution_figure(predict: dict[str, Any]) -> go.Figure:
    """Servers per risk level, as bars coloured by level."""
    counts = tables.risk_distribution(predict)
    fig = go.Figure(
        go.Bar(
            x=list(counts),
            y=list(counts.values()),
            marker_color=[LEVEL_COLOURS[lv] for lv in LEVEL_NAMES],
        )
    )
    fig.update_layout(title="Risk distribution", yaxis_title="servers", uirevision="dist")
    return fig


def heatmap_figure(predict: dict[str, Any], limit: int = 200) -> go.Figure:
    """Servers x risk metrics, coloured by each metric's risk points (0-100); at most
    limit servers, the riskiest, and the title says how many were left out."""
    names, z, left_out = tables.heatmap_points(predict, limit)
    title = "Risk by metric (points, worst horizon)"
    if left_out:
        title += f": top {len(names)} servers by risk score, {left_out} more not shown"
    if not names:
        return _empty(title, "no servers yet")
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(RISK_METRICS),
            y=names,
            zmin=0,
            zmax=100,
            colorscale=[
                [0, "#f7f7f7"],
                [0.3, LEVEL_COLOURS["watch"]],
                [0.5, LEVEL_COLOURS["warning"]],
                [1, LEVEL_COLOURS["critical"]],
            ],
            hovertemplate="%{y} · %{x}: %{z} points<extra></extra>",
        )
    )
    fig.update_layout(title=title, height=max(300, 18 * len(names) + 120), uirevision="heat")
    fig.update_yaxes(autorange="reversed")
    return fig


def _series(metric: str, values: list[float | None]) -> list[float | None]:
    """A source column's values as the charted metric (cpu_used_pct = 100 - idle)."""
    if metric == "cpu_used_pct":
        return [None if v is None else 100.0 - v for v in values]
    return list(values)


def _source(metric: str) -> str:
    return RISK_SOURCES.get(metric, metric)


def forecast_figure(
    metric: str,
    history: dict[str, Any] | None,
    trajectory: dict[str, Any] | None,
    server: str = "",
) -> go.Figure:
    """The metric's recent history joined to its p50 forecast, the p10-p90 band and the
    warning / critical threshold lines of risk.py (zoom kept per server and metric)."""
    fig = go.Figure()
    source = _source(metric)
    last: tuple[str, float] | None = None
    if history and source in history.get("values", {}):
        ys = _series(metric, history["values"][source])
        fig.add_trace(go.Scatter(x=history["timestamps"], y=ys, name="history", mode="lines"))
        known = [(t, y) for t, y in zip(history["timestamps"], ys, strict=False) if y is not None]
        last = known[-1] if known else None
    if trajectory and source in trajectory.get("p50", {}):
        _add_forecast(fig, metric, trajectory, last)
    if metric in RISK_THRESHOLDS:
        for severity, level in zip(("warning", "critical"), RISK_THRESHOLDS[metric], strict=True):
            fig.add_hline(y=level, line_dash="dash", line_color=LEVEL_COLOURS[severity])
    if not fig.data:
        return _empty(metric, "no history or forecast yet")
    fig.update_layout(title=metric, uirevision=f"{server}:{metric}", margin={"t": 40, "b": 30})
    return fig


def _add_forecast(
    fig: go.Figure, metric: str, trajectory: dict[str, Any], last: tuple[str, float] | None
) -> None:
    source, times = _source(metric), list(trajectory["timestamps"])
    low, high = ("p90", "p10") if metric == "cpu_used_pct" else ("p10", "p90")
    upper = _series(metric, trajectory[high][source])
    lower = _series(metric, trajectory[low][source])
    fig.add_trace(go.Scatter(x=times, y=upper, line={"width": 0}, showlegend=False))
    fig.add_trace(
        go.Scatter(
            x=times,
            y=lower,
            name="p10-p90",
            fill="tonexty",
            fillcolor="rgba(31,119,180,0.2)",
            line={"width": 0},
        )
    )
    p50 = _series(metric, trajectory["p50"][source])
    if last is not None:  # join the forecast to the last observed step
        times, p50 = [last[0], *times], [last[1], *p50]
    fig.add_trace(go.Scatter(x=times, y=p50, name="forecast p50", line={"dash": "dot"}))
