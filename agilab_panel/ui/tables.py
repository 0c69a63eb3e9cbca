"""Tables that keep their columns for life.

A Tabulator whose columns change rebuilds itself in the browser, and the updates that reach it while
it rebuilds (styles, pages, column visibility) fail there with "Cannot read properties of null". So a
table only ever receives new rows for the columns it was made with; other columns get a new table.
"""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import panel as pn

__all__ = ["show_frame"]


def show_frame(table: pn.widgets.Tabulator | None, frame: pd.DataFrame,
               make: Callable[[pd.DataFrame], pn.widgets.Tabulator]) -> pn.widgets.Tabulator:
    """``frame`` in ``table`` when it has the same columns (the caller keeps showing it), else in a new
    table from ``make`` (the caller shows that one instead)."""
    if table is not None and list(table.value.columns) == list(frame.columns):
        table.value = frame
        return table
    return make(frame)
