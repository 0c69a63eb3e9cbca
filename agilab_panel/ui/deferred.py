"""Parts of a view sent to the browser only once they are shown.

A ``visible=False`` layout still costs the page every Bokeh model inside it: made on the server,
serialised, sent and laid out by the browser, at the first render and again whenever its section is
rebuilt. A plot or a table that shows only once there is data is put into its box when it is first
shown instead, and stays there (hiding it again is a ``visible`` switch, showing it again costs nothing).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import panel as pn

__all__ = ["made", "show_when"]


def made(obj: Any, name: str) -> bool:
    """Whether the part ``name`` of ``obj``, a ``functools.cached_property`` made when first asked for,
    exists yet: what updates a part not made yet can skip, since it is made with the state in force."""
    return name in vars(obj)


def show_when(box: pn.layout.ListLike, parts: Sequence[Any] | Callable[[], Sequence[Any]], shown: bool) -> None:
    """Show ``box`` while ``shown``; the first time it is shown it receives ``parts`` (or what calling
    ``parts`` returns), not before."""
    if shown and not box.objects:
        box.objects = list(parts() if callable(parts) else parts)
    box.visible = shown
