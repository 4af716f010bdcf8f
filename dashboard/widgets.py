"""Components shared by the pages."""

from __future__ import annotations

import warnings
from typing import Any

from dash import dash_table


def data_table(**kwargs: Any) -> dash_table.DataTable:
    """A DataTable, without Dash 4's DeprecationWarning for it (it still works; its
    replacement, dash-ag-grid, is not a dependency of this project yet)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"\s*The dash_table.DataTable", DeprecationWarning)
        return dash_table.DataTable(**kwargs)
