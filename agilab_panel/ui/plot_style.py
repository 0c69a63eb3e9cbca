"""How the page's plots are drawn and updated.

HoloViews draws Bokeh plots with WebGL by default. The page's plots hold tens to a few thousand glyphs,
where a 2D canvas is as fast, and WebGL costs a context per plot and a copy of every frame onto the
canvas; without a GPU (virtual machines, remote desktops, headless browsers) the browser emulates it in
software, and opening the Distribute section spent about a fifth of its time there.

HoloViews updates a plot inside a "freeze" of the Bokeh document, and Bokeh walks every model of the page
when the outermost freeze ends (some 500 models with every section open). Updates of several plots at
once go inside :func:`one_document_pass`, so the page is walked once, not once per plot.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import panel as pn

__all__ = ["CANVAS", "one_document_pass"]

CANVAS = {"plot.output_backend": "canvas"}  # HoloViews ``backend_opts``: the figure drawn on a 2D canvas


@contextlib.contextmanager
def one_document_pass() -> Iterator[None]:
    """Plot updates made inside walk the session's document once, when the block ends."""
    doc = pn.state.curdoc
    if doc is None:
        yield
        return
    with doc.models.freeze():
        yield
