"""The served process's heap, settled once it holds what every session uses.

The dashboard's process keeps some 700,000 objects for as long as it runs (Panel, Bokeh, HoloViews,
pandas, the page's own modules). Building a session's page allocates a few hundred thousand more, so
CPython's cyclic garbage collector runs hundreds of times per page, and each of its full passes walks
the whole heap: about a fifth of the server's time on a page with every section open. Once the
modules are imported, ``gc.freeze()`` moves what exists then out of the collector's reach, and the
youngest generation is collected every few thousand allocations instead of every 700; cycles made
afterwards are still collected, a little later.
"""
from __future__ import annotations

import gc
import importlib

__all__ = ["settle_heap"]

YOUNG_THRESHOLD = 7000  # allocations between two collections of the youngest generation (CPython: 700)


def settle_heap() -> int:
    """Import what the page's sections and plots use, freeze the heap as it is, and collect the youngest
    generation less often. Returns the number of objects frozen. For a serving process only: frozen
    objects are never collected, even once unused."""
    from .page import SECTIONS, _section_class

    importlib.import_module("holoviews.plotting.bokeh")  # the plots' backend, loaded by the first plot
    for spec in SECTIONS:
        _section_class(spec)  # a section's module, imported by the first session opening it
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)
    return gc.get_freeze_count()
