"""Serve the ORCHESTRATE page with Panel's server (what ``agilab-panel serve`` calls).

Each browser session gets its own :class:`~agilab_panel.ui.state.OrchestrateState` (its own event bus,
results and running action); settings files are shared on disk, merged leaf by leaf. The server binds
127.0.0.1 by default. It answers only for the host names it is served as (a request naming another
host, as a DNS-rebinding page would, gets 403, websocket included) and accepts websocket connections
only from those names unless told otherwise. Beyond loopback it refuses to start without a login:
a password (kept hashed, read from a file or the environment) or OAuth.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import panel as pn
from tornado.httputil import HTTPServerRequest
from tornado.routing import Matcher, Rule
from tornado.web import Application, ErrorHandler

from ..apps import apps_paths_from_environment
from ..hosts import is_local_host, is_loopback, is_wildcard, own_addresses, validate_host
from ..passwords import PASSWORD_ENV, hash_password, is_password_hash, load_password_hash
from .heap import settle_heap
from .runners import RUNNERS

__all__ = ["serve", "page_factory", "session_page", "websocket_origins", "served_hosts", "guard_hosts", "free_port"]

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
AUTH_HINT = (f"set {PASSWORD_ENV} or pass --password-file FILE (basic auth), or --oauth-provider NAME; "
             "see README, Serving beyond this machine")


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on ``address`` right now."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address.strip("[]"), 0))
        return sock.getsockname()[1]


def _apps_path(apps_path: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[str]:
    if apps_path is None:
        return [os.fspath(p) for p in apps_paths_from_environment()]
    if isinstance(apps_path, (str, os.PathLike)):
        return [os.fspath(apps_path)]
    return [os.fspath(p) for p in apps_path]


def _names(extra: str | Iterable[str] | None) -> list[str]:
    return [extra] if isinstance(extra, str) else list(extra or [])


def _bare(host: str) -> str:
    return host.strip("[]").lower()


def served_hosts(address: str, extra: str | Iterable[str] | None = None) -> list[str]:
    """Host names the page answers for: the served address (with ``localhost`` on loopback; this
    machine's names and addresses on every interface), plus the ``extra`` names."""
    if _bare(address) == "localhost":
        names = list(_LOOPBACK_NAMES)
    elif is_loopback(address):
        names = ["localhost", address]
    elif is_wildcard(address):
        names = sorted(own_addresses() | set(_LOOPBACK_NAMES))
    else:
        names = [address]
    names += _names(extra)
    return list(dict.fromkeys(_bare(n) for n in names))


def websocket_origins(address: str, port: int, extra: str | Sequence[str] | None = None,
                      hosts: str | Iterable[str] | None = None) -> list[str]:
    """The served ``address:port`` (every served host name), the extra ``hosts`` on any port, plus
    any ``extra`` origins. Bokeh's origin check cannot parse IPv6 literals: those pages are reached
    by name (``localhost``, a DNS name) for their websocket."""
    served = [n for n in served_hosts(address) if ":" not in n]
    origins = [f"{n}:{port}" for n in served]
    origins += [n for n in (_bare(h) for h in _names(hosts)) if ":" not in n]
    origins += _names(extra)
    return list(dict.fromkeys(origins))


class _OtherHost(Matcher):
    """Matches a request whose Host header names none of the served hosts."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(_bare(n) for n in names)

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        return None if _bare(request.host_name) in self.names else {}


def guard_hosts(app: Application, names: Iterable[str]) -> None:
    """Answer 403 to every request (page, websocket, static files) whose Host is not in ``names``."""
    app.default_router.rules.insert(0, Rule(_OtherHost(names), ErrorHandler, {"status_code": 403}))


def session_page(app: str | None = None, apps_path: list[str] | None = None) -> Any:
    """The page of one served session, holding its app's warm runner only while open in a browser."""
    from .page import OrchestratePage
    from .state import OrchestrateState

    state = OrchestrateState(app=app, apps_path=apps_path, runners=RUNNERS)
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        pn.state.onload(state.open_page)  # fired by the browser once the page is loaded, never by a bare GET
        pn.state.on_session_destroyed(lambda _context: state.close())
    return OrchestratePage(state)


def page_factory(apps_path: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> Callable[[], Any]:
    """A function building the page of one session (``?app=<name>`` in the URL picks the app)."""
    paths = _apps_path(apps_path)

    def build() -> Any:
        from .page import load_extensions

        load_extensions()
        args = pn.state.session_args or {}
        app = args.get("app", [b""])[0].decode() or None
        return session_page(app=app, apps_path=paths).template

    return build


def _check_where(address: str, port: int, allow_hosts: str | Iterable[str] | None) -> None:
    """One-line errors for an address, port or host name the server could not (or should not) use."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError("address must name the interface to listen on, such as 127.0.0.1 or 0.0.0.0")
    validate_host(address)
    if not is_wildcard(address) and not is_local_host(address):
        raise ValueError(f"{address} is not an address of this machine: give one of its addresses, or 0.0.0.0")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer 0..65535 (0: a free one), got {port!r}")
    for name in _names(allow_hosts):
        try:
            validate_host(name)
        except ValueError as exc:
            raise ValueError(f"allowed host {name!r}: give a host name or address without a port ({exc})") from None


def _auth_options(address: str, password_file: str | os.PathLike | None, basic_auth: str | None,
                  oauth_provider: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """Server options for the login asked for; refuses to expose the page beyond loopback without one."""
    guests = options.get("oauth_optional") or options.get("oauth_guest_endpoints") or pn.config.oauth_optional
    if guests and not is_loopback(address):
        raise ValueError("oauth_optional and oauth_guest_endpoints let visitors in without a login: "
                         "not beyond loopback")
    if basic_auth is not None and password_file is not None:
        raise ValueError("give the password either as basic_auth or as a password file, not both")
    if (basic_auth is not None or password_file is not None) and oauth_provider:
        raise ValueError("choose one login: a password or an OAuth provider")
    if basic_auth is not None:
        if not isinstance(basic_auth, str) or not basic_auth:
            raise ValueError("basic_auth must be a non-empty password (or its hash)")
        password_hash = basic_auth if is_password_hash(basic_auth) else hash_password(basic_auth)
    else:
        password_hash = load_password_hash(password_file) if not oauth_provider else None
    if password_hash is None and not oauth_provider:
        if not is_loopback(address):
            where = "every interface" if is_wildcard(address) else address
            raise ValueError(f"serving on {where} exposes the dashboard beyond this machine: {AUTH_HINT}")
        return {}
    if not pn.config.cookie_secret:  # signs the login cookie; a new one per start unless given
        pn.config.cookie_secret = secrets.token_urlsafe(32)
    if oauth_provider:
        return {"oauth_provider": oauth_provider}
    from .auth import PasswordAuthProvider

    return {"auth_provider": PasswordAuthProvider(password_hash)}


def _bokeh_serving_settings() -> None:
    """Bokeh's settings for serving, as Bokeh documents them for speed: no diagnostic pass over each new
    session's document (its findings only go to the log) and no signature check of each of the thousand
    callbacks Panel registers per session. ``BOKEH_VALIDATE_DOC`` / ``BOKEH_PERFORM_ERROR_DIAGNOSTICS``
    (environment or Bokeh's config file) still decide when set."""
    from bokeh.settings import settings

    for setting in (settings.perform_document_validation, settings.perform_error_diagnostics):
        _value, provenance = setting.get_value_with_provenance()
        if provenance.name.endswith("DEFAULT"):  # nobody chose: serving's choice
            setting.set_value(False)


def closed_tab_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's exception handler: a message to a page whose tab just closed fails with
    ``WebSocketClosedError`` in a write Panel no longer awaits once the session is gone; that is the
    tab closing, not an error (logged at debug). Everything else goes to asyncio's default handler."""
    from tornado.websocket import WebSocketClosedError

    if isinstance(context.get("exception"), WebSocketClosedError):
        logging.getLogger(__name__).debug("a message to a closed page was dropped")
        return
    loop.default_exception_handler(context)


def _server(pages: Any, names: list[str], start: bool, **options: Any) -> Any:
    """Panel's server with the Host guard in front of every route; runs it if ``start``."""
    from panel.io.server import get_server

    server = get_server(pages, start=False, **options)
    server.io_loop.asyncio_loop.set_exception_handler(closed_tab_handler)
    guard_hosts(server._tornado, names)  # Bokeh's server keeps its tornado Application there (Panel reads it too)
    if start:
        server.start()
        server.io_loop.start()
    return server


def serve(
    address: str = "127.0.0.1",
    port: int = 5006,
    apps_path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    show: bool = False,
    allow_websocket_origin: str | Sequence[str] | None = None,
    *,
    allow_hosts: str | Sequence[str] | None = None,
    password_file: str | os.PathLike | None = None,
    basic_auth: str | None = None,
    oauth_provider: str | None = None,
    threaded: bool = False,
    routes: Mapping[str, Callable[[], Any]] | None = None,
    **kwargs: Any,
) -> Any:
    """Serve the page at ``http://address:port/`` (blocks unless ``threaded``; returns the server or thread).

    ``port=0`` picks a free port. ``routes`` adds more pages (``{"bare": fn}`` is served at ``/bare``).
    ``allow_hosts`` adds host names the page answers for (a name it is reached by: a proxy, a DNS
    name). ``/metrics`` serves the Prometheus text of the services of the apps it knows, behind the
    same Host check and login as the page. A login is required beyond loopback: ``password_file`` (or ``$AGILAB_PANEL_PASSWORD``, or
    ``basic_auth=`` from Python) holds the password or its hash; ``oauth_provider`` and Panel's other
    ``oauth_*`` options pass through to Panel.
    """
    from .page import TITLE, load_extensions

    _check_where(address, port, allow_hosts)
    auth = _auth_options(address, password_file, basic_auth, oauth_provider, kwargs)
    if port == 0:
        port = free_port(address)
    load_extensions()
    _bokeh_serving_settings()
    settle_heap()
    names = served_hosts(address, allow_hosts)
    origins = websocket_origins(address, port, allow_websocket_origin, allow_hosts)
    pages: dict[str, Any] = {"/": page_factory(apps_path)}
    for slug, fn in (routes or {}).items():
        pages["/" + slug.lstrip("/")] = fn
    if not is_loopback(address):
        login = "OAuth" if "oauth_provider" in auth else "password"
        print(f"agilab-panel: serving on {address}:{port} with {login} login; host names: {', '.join(names)}")
    from .metrics import metrics_route

    extra = [*kwargs.pop("extra_patterns", []), metrics_route(_apps_path(apps_path))]  # /metrics: Prometheus text
    options = dict(address=address.strip("[]"), port=port, show=show, title=TITLE, websocket_origin=origins,
                   extra_patterns=extra, **auth, **kwargs)
    target = pages if len(pages) > 1 else pages["/"]
    if not threaded:
        return _server(target, names, True, **options)
    from panel.io.server import StoppableThread
    from panel.io.state import state
    from tornado.ioloop import IOLoop

    loop = IOLoop(make_current=False)
    server_id = options.setdefault("server_id", uuid.uuid4().hex)  # how Panel pairs the thread and its server
    thread = StoppableThread(target=_server, io_loop=loop, args=(target, names, True),
                             kwargs={**options, "loop": loop}, owns_loop=True)
    state._threads[server_id] = thread
    thread.start()
    return thread
