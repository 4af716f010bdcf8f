"""dashboard/figures.py: plotly figures from canned daemon answers."""

from __future__ import annotations

from dashboard import figures
from risk import RISK_METRICS, RISK_THRESHOLDS
from tests.dashboard_fixtures import history_body, predict_body, trajectory


def test_risk_distribution_figure() -> None:
    fig = figures.risk_distribution_figure(predict_body())
    assert list(fig.data[0].y) == [2, 0, 0, 1]
    assert fig.layout.uirevision == "dist"


def test_heatmap_figure_says_what_is_left_out() -> None:
    fig = figures.heatmap_figure(predict_body(), limit=2)
    assert list(fig.data[0].x) == list(RISK_METRICS)
    assert list(fig.data[0].y) == ["ppdb001", "ppml003"]
    assert "top 2 servers" in fig.layout.title.text and "1 more" in fig.layout.title.text
    assert "not shown" not in figures.heatmap_figure(predict_body()).layout.title.text


def test_heatmap_figure_empty() -> None:
    fig = figures.heatmap_figure({"predictions": {}})
    assert not fig.data and fig.layout.annotations[0].text == "no servers yet"


def test_forecast_figure_joins_history_band_and_thresholds() -> None:
    history = history_body("ppdb001")
    fig = figures.forecast_figure("mem_used_pct", history, trajectory())
    names = [trace.name for trace in fig.data]
    assert names == ["history", None, "p10-p90", "forecast p50"]
    band_low = fig.data[2]
    assert band_low.fill == "tonexty" and band_low.y[0] == 75.0 and fig.data[1].y[0] == 85.0
    p50 = fig.data[3]
    assert p50.x[0] == history["timestamps"][-1]
    assert p50.y[0] == history["values"]["mem_used_pct"][-1]
    assert len(p50.x) == 97
    lines = sorted(shape.y0 for shape in fig.layout.shapes)
    assert lines == sorted(RISK_THRESHOLDS["mem_used_pct"])


def test_forecast_figure_cpu_used_is_derived_from_idle() -> None:
    fig = figures.forecast_figure("cpu_used_pct", history_body("a"), trajectory())
    assert fig.data[0].y[0] == 100.0 - 70.0
    upper, lower = fig.data[1].y[0], fig.data[2].y[0]
    assert upper == 100.0 - 75.0 and lower == 100.0 - 85.0  # p90 of used = 100 - p10 of idle


def test_forecast_figure_without_history_or_thresholds() -> None:
    fig = figures.forecast_figure("load_average", None, trajectory())
    assert [t.name for t in fig.data] == [None, "p10-p90", "forecast p50"]
    assert not fig.layout.shapes and len(fig.data[2].x) == 96


def test_forecast_figure_nothing_yet() -> None:
    fig = figures.forecast_figure("mem_used_pct", None, None)
    assert fig.layout.annotations[0].text == "no history or forecast yet"
