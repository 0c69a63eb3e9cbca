"""A HoloViews pane that redraws in place while the plot keeps its shape.

Setting a new element on a ``pn.pane.HoloViews`` makes a new Bokeh figure: the server renders every
model again and the browser builds and lays out a new canvas (about half a second for the distribution
tree and the load chart together). A plot fed through a ``Pipe`` stream keeps its figure and sends only
the new data. Some options are fixed when a figure is made, though (its height, its categorical axis, the
number of glyphs): ``shape(data)`` names what they depend on, and a new shape gets a new figure.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import holoviews as hv
import panel as pn
from holoviews.streams import Pipe

__all__ = ["InPlacePlot"]

T = TypeVar("T")


class InPlacePlot(Generic[T]):
    """``pane`` shows ``make(data)``; :meth:`show` updates the figure in place while ``shape(data)`` stays."""

    def __init__(self, pane: pn.pane.HoloViews, make: Callable[[T], hv.core.Dimensioned],
                 shape: Callable[[T], Hashable]) -> None:
        self.pane, self._make, self._shape = pane, make, shape
        self._pipe: Pipe | None = None
        self._key: Hashable = None
        self.figures = 0  # figures made so far (a redraw in place makes none)

    def show(self, data: T) -> None:
        key = self._shape(data)
        if self._pipe is not None and key == self._key:
            self._pipe.send(data)
            return
        self._key, self._pipe = key, Pipe(data=data)
        self.figures += 1
        self.pane.object = hv.DynamicMap(self._draw, streams=[self._pipe])

    def _draw(self, data: T) -> Any:  # the stream's parameter is ``data``: the callback takes it by that name
        return self._make(data)

    @property
    def element(self) -> Any:
        """What the pane shows now, as a HoloViews element (``None`` before the first :meth:`show`)."""
        return None if self._pipe is None else self._make(self._pipe.data)
