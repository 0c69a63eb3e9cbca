"""How the page's plots are drawn.

HoloViews draws Bokeh plots with WebGL by default. The page's plots hold tens to a few thousand glyphs,
where a 2D canvas is as fast, and WebGL costs a context per plot and a copy of every frame onto the
canvas; without a GPU (virtual machines, remote desktops, headless browsers) the browser emulates it in
software, and opening the Distribute section spent about a fifth of its time there.
"""
from __future__ import annotations

__all__ = ["CANVAS"]

CANVAS = {"plot.output_backend": "canvas"}  # HoloViews ``backend_opts``: the figure drawn on a 2D canvas
