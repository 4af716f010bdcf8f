"""The risk levels' colours, shared by the figures, the heatmap and the grids' rows."""

from __future__ import annotations

LEVEL_COLOURS: dict[str, str] = {
    "healthy": "#2ca02c",
    "watch": "#f0c000",
    "warning": "#ff7f0e",
    "critical": "#d62728",
    "unknown": "#7f7f7f",
}
