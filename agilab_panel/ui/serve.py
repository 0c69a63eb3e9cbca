"""Serve the ORCHESTRATE page with Panel's server (what ``agilab-panel serve`` calls).

Each browser session gets its own :class:`~agilab_panel.ui.state.OrchestrateState` (its own event bus,
results and running action); settings files are shared on disk, merged leaf by leaf. The server binds
127.0.0.1 and accepts websocket connections only from the address it serves unless told otherwise.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import panel as pn

__all__ = ["serve", "page_factory", "websocket_origins", "free_port"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on ``address`` right now."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _apps_path(apps_path: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[str]:
    if apps_path is None:
        return [p for p in os.environ.get("AGILAB_APPS_PATH", "").split(os.pathsep) if p]
    if isinstance(apps_path, (str, os.PathLike)):
        return [os.fspath(apps_path)]
    return [os.fspath(p) for p in apps_path]


def websocket_origins(address: str, port: int, extra: str | Sequence[str] | None = None) -> list[str]:
    """The served ``address:port`` (both loopback names on loopback), plus any ``extra`` origins."""
    host = f"[{address}]" if ":" in address and not address.startswith("[") else address
    origins = [f"{host}:{port}"]
    if address in _LOOPBACK:
        origins = [f"localhost:{port}", f"127.0.0.1:{port}"]
    if extra:
        origins += [extra] if isinstance(extra, str) else list(extra)
    return origins


def page_factory(apps_path: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> Callable[[], Any]:
    """A function building the page of one session (``?app=<name>`` in the URL picks the app)."""
    paths = _apps_path(apps_path)

    def build() -> Any:
        from .page import OrchestratePage, load_extensions

        load_extensions()
        args = pn.state.session_args or {}
        app = args.get("app", [b""])[0].decode() or None
        return OrchestratePage(app=app, apps_path=paths).template

    return build


def serve(
    address: str = "127.0.0.1",
    port: int = 5006,
    apps_path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    show: bool = False,
    allow_websocket_origin: str | Sequence[str] | None = None,
    *,
    threaded: bool = False,
    routes: Mapping[str, Callable[[], Any]] | None = None,
    **kwargs: Any,
) -> Any:
    """Serve the page at ``http://address:port/`` (blocks unless ``threaded``; returns the server or thread).

    ``port=0`` picks a free port. ``routes`` adds more pages (``{"bare": fn}`` is served at ``/bare``).
    """
    from .page import TITLE, load_extensions

    if port == 0:
        port = free_port(address)
    load_extensions()
    origins = websocket_origins(address, port, allow_websocket_origin)
    pages: dict[str, Any] = {"/": page_factory(apps_path)}
    for slug, fn in (routes or {}).items():
        pages["/" + slug.lstrip("/")] = fn
    if address not in _LOOPBACK:
        print(f"agilab-panel: serving on {address}:{port}; websocket origins allowed: {', '.join(origins)}")
    return pn.serve(
        pages if len(pages) > 1 else pages["/"], address=address, port=port, show=show, title=TITLE,
        websocket_origin=origins, threaded=threaded, **kwargs,
    )
