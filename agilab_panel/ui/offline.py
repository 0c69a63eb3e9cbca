"""Everything the page shows comes from its own server: button icons and fonts are files of this package.

Left to themselves, BokehJS loads the Tabler icon font from a CDN for every ``icon="name"`` and the
FAST design links Open Sans from Google Fonts: where those hosts are unreachable (air-gapped sites)
buttons show no icon and text falls back to another font. Here :func:`icon` gives the SVG of a Tabler
icon shipped in ``assets/icons`` (Panel draws SVG icons inline), :class:`OfflineFast` is the FAST design
without its web-font link, and :func:`register` lets the server serve ``assets/`` (the Open Sans files
and their stylesheet :data:`FONT_CSS`) as a Bokeh extension folder.
"""
from __future__ import annotations

import functools
from pathlib import Path

from bokeh.embed.bundle import extension_dirs
from panel.io.resources import CDN_DIST
from panel.layout import Card
from panel.widgets import FloatInput, IntInput, RadioButtonGroup, Switch
from panel.theme.base import Inherit
from panel.theme.fast import Fast
from panel.util import isurl

__all__ = ["ASSETS", "CARD_CSS", "FONT_CSS", "SPINNER_CSS", "SWITCH_CSS", "TOGGLE_GROUP_CSS", "OfflineFast", "icon", "register"]

ASSETS = Path(__file__).with_name("assets")
_EXTENSION = "agilab_panel"
# Relative to the page, like Panel's own static files (so it also works under a URL prefix).
FONT_CSS = f"static/extensions/{_EXTENSION}/fonts/open-sans.css"


@functools.cache
def icon(name: str) -> str:
    """The SVG of the Tabler icon ``name`` (``"download"``...), for a button's ``icon``."""
    path = ASSETS / "icons" / f"{name}.svg"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ValueError(f"no icon {name!r} in agilab_panel/ui/assets/icons: add its SVG from Tabler Icons "
                         "(a name would make the browser fetch the icon font from a CDN)") from None


# A card's chevron is drawn by the stroke of an SVG path, which the design leaves at none: give it the
# header's colour, so a collapsed card shows that it opens (and an open one that it closes).
CARD_CSS = """
.card-button svg, .card-button svg path:not([stroke]) { stroke: currentColor; }
.card-button { margin-right: 0.35em; }
"""
# Bokeh toggles a switch only on a click of its bar; its label is a plain div. A transparent layer of
# the bar reaching left over the label (clipped to the widget) makes a click on the label a click on
# the bar, as a <label> would.
SWITCH_CSS = """
:host { overflow: hidden; }
.bk-label { cursor: pointer; }
.bk-body::after { content: ""; position: absolute; top: -4px; bottom: -4px; right: 0; left: -100vw; }
"""
# The spinner's up/down buttons have no name for assistive technology (arrow keys step the value).
SPINNER_CSS = """
.bk-spin-btn { display: none !important; }
"""  # the arrows only: .bk-spin-wrapper holds the input itself
# The pressed button of a toggle group, filled with the page's accent (the light design barely shades it).
TOGGLE_GROUP_CSS = """
.bk-btn-group .bk-btn.bk-active { background-color: #0b6e99; border-color: #0b6e99; color: #ffffff; }
"""


class OfflineFast(Fast):
    """The FAST design, minus the Google Fonts stylesheet (the page links :data:`FONT_CSS` instead),
    with the cards' chevrons drawn, clickable switch labels, named controls only and pressed toggles
    that look pressed."""

    modifiers = {
        **Fast.modifiers,  # Inherit: FAST's own stylesheets first
        Card: {"stylesheets": [Inherit, CARD_CSS]},
        Switch: {"stylesheets": [Inherit, SWITCH_CSS]},
        IntInput: {"stylesheets": [Inherit, SPINNER_CSS]},
        FloatInput: {"stylesheets": [Inherit, SPINNER_CSS]},
        RadioButtonGroup: {"stylesheets": [Inherit, TOGGLE_GROUP_CSS]},
    }

    # Panel finds a design's relative files under the class name: name FAST's folder explicitly.
    _resources = {
        **Fast._resources, "font": {},
        "js_modules": {name: url if isurl(url) else f"{CDN_DIST}bundled/{Fast.__name__.lower()}/{url}"
                       for name, url in Fast._resources["js_modules"].items()},
    }


def register() -> None:
    """Serve ``assets/`` at ``static/extensions/agilab_panel/`` (Bokeh serves every registered extension folder)."""
    extension_dirs[_EXTENSION] = ASSETS
