"""Components shared by the pages."""

from __future__ import annotations

from typing import Any

import dash_ag_grid as dag

from dashboard.colours import LEVEL_COLOURS as ALL_LEVEL_COLOURS

# Row colours by risk level, as JavaScript conditions on a row's field (see grid()).
LEVEL_COLOURS: dict[str, str] = {lv: ALL_LEVEL_COLOURS[lv] for lv in ("critical", "warning")}


def level_rules(field: str) -> list[tuple[str, dict[str, str]]]:
    """Rules colouring a row's text by the risk level in field."""
    return [
        (f"params.data && params.data.{field} === '{level}'", {"color": colour})
        for level, colour in LEVEL_COLOURS.items()
    ]


def grid(
    *,
    id: str,
    columns: list[dict[str, Any]],
    page_size: int | None = None,
    row_rules: list[tuple[str, dict[str, str]]] | None = None,
    row_id: str | None = None,
) -> dag.AgGrid:
    """An AG Grid of columns {"name", "id", "type": "numeric"?, "markdown": True?}:
    sortable, filterable (numbers with a number filter), resizable; the user's sort,
    filters and column widths persist across refreshes and visits. row_rules: (a
    JavaScript condition on params.data, a style) pairs; row_id: the field that names a
    row, so that a refresh updates rows in place."""
    options: dict[str, Any] = {"domLayout": "autoHeight", "animateRows": False}
    if page_size:
        options |= {"pagination": True, "paginationPageSize": page_size}
    extra: dict[str, Any] = {}
    if row_rules:
        rules = [{"condition": c, "style": s} for c, s in row_rules]
        extra["getRowStyle"] = {"styleConditions": rules}
    if row_id:
        extra["getRowId"] = f"params.data.{row_id}"
    return dag.AgGrid(
        id=id,
        columnDefs=[_column(c) for c in columns],
        rowData=[],
        defaultColDef={"sortable": True, "filter": True, "resizable": True},
        dashGridOptions=options,
        columnSize="autoSize",
        persistence=True,
        persisted_props=["filterModel", "columnState"],
        **extra,
    )


def _column(spec: dict[str, Any]) -> dict[str, Any]:
    column: dict[str, Any] = {"headerName": spec["name"], "field": spec["id"]}
    if spec.get("type") == "numeric":
        column["filter"] = "agNumberColumnFilter"
    if spec.get("markdown"):
        column["cellRenderer"] = "markdown"
    return column
