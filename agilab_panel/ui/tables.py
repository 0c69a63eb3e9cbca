"""Tables that keep their columns for life.

A Tabulator whose columns change rebuilds itself in the browser, and the updates that reach it while
it rebuilds (styles, pages, column visibility) fail there with "Cannot read properties of null". So a
table only ever receives new rows for the columns it was made with; other columns get a new table.
"""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import panel as pn

__all__ = ["NO_SORT_CSS", "show_frame", "sort_arrows"]

# One row has no order to change: its headers show no sort arrow. A stylesheet, not ``sortable``: a
# change of the columns' options would rebuild the table in the browser (see above).
NO_SORT_CSS = ".tabulator-col-sorter { display: none !important; }"


def sort_arrows(table: pn.widgets.Tabulator, rows: int) -> None:
    """Show the headers' sort arrows only when the table has more than one row."""
    sheets = [sheet for sheet in table.stylesheets if sheet != NO_SORT_CSS] + ([NO_SORT_CSS] if rows <= 1 else [])
    if sheets != list(table.stylesheets):
        table.stylesheets = sheets


def show_frame(table: pn.widgets.Tabulator | None, frame: pd.DataFrame,
               make: Callable[[pd.DataFrame], pn.widgets.Tabulator]) -> pn.widgets.Tabulator:
    """``frame`` in ``table`` when it has the same columns (the caller keeps showing it), else in a new
    table from ``make`` (the caller shows that one instead). A table of one row shows no sort arrows."""
    if table is not None and list(table.value.columns) == list(frame.columns):
        table.value = frame
    else:
        table = make(frame)
    sort_arrows(table, len(frame))
    return table
