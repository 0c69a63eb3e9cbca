"""The page's template: Panel's FastListTemplate, its session document's models counted once.

A session's document is built on the server before the browser gets the first byte of the page, so
everything spent there adds to the first render. While a template puts its roots into a Bokeh document,
every change that adds or links a model (the design's stylesheets on each component, each JS link)
makes Bokeh walk every model of the document to recount them: about a dozen walks of the whole page
per session. Under ``Document.models.freeze()`` that walk happens once, when the document is complete;
nothing reads the document's model index while it is assembled (a test checks that the document
serialises exactly as Panel's own template builds it).
"""
from __future__ import annotations

from typing import Any

import panel as pn
from bokeh.document import Document
from panel.io.document import create_doc_if_none_exists

__all__ = ["PageTemplate"]


class PageTemplate(pn.template.FastListTemplate):
    """FastListTemplate whose session document counts its models once, when it is complete."""

    def _init_doc(self, doc: Document | None = None, comm: Any = None, title: str | None = None,
                  notebook: bool = False, location: Any = True) -> Document:
        document = create_doc_if_none_exists(doc)  # the session's document (pn.state.curdoc) when not given
        with document.models.freeze():
            return super()._init_doc(document, comm, title, notebook, location)
