"""A message to a page whose tab just closed fails in a write nobody awaits any more: the server's loop
drops that failure quietly and reports every other one as asyncio does."""
from __future__ import annotations

import asyncio
import logging

import panel as pn
import pytest
from tornado.websocket import WebSocketClosedError

from agilab_panel.ui.serve import _server, closed_tab_handler, free_port


def _unretrieved(exc: BaseException) -> dict:
    return {"message": "Task exception was never retrieved", "exception": exc}


def test_a_write_to_a_closed_page_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.DEBUG):
            closed_tab_handler(loop, _unretrieved(WebSocketClosedError()))
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert "closed page" in caplog.text
            closed_tab_handler(loop, _unretrieved(RuntimeError("a real failure")))
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "never retrieved" in errors[0].getMessage()
        assert "a real failure" in caplog.text
    finally:
        loop.close()


def test_the_served_loop_uses_it() -> None:
    server = _server(lambda: pn.pane.Markdown("page"), ["127.0.0.1"], False, address="127.0.0.1", port=free_port())
    try:
        assert server.io_loop.asyncio_loop.get_exception_handler() is closed_tab_handler
    finally:
        server.stop()
