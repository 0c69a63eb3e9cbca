"""``/metrics`` of the served dashboard: Prometheus text for every service it knows, so a Prometheus
server scrapes the dashboard directly.

The services it knows are the apps (built in and from the served apps path) with a service state
file under the cluster share. Each scrape reads their files (:func:`~agilab_panel.service.monitor.health_payload`:
no Dask connection, no restart) and adds the gate code judged with the app's own thresholds.

The route sits behind the same guards as the page: the Host check in front of every route, and the
login when the dashboard has one (its cookie; a scraper may send the password as HTTP basic auth instead).
"""
from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Sequence
from typing import Any

from tornado.web import RequestHandler, authenticated

from ..apps import discover_apps
from ..env import AgiEnv
from ..service.gate import GateResult, evaluate_gate
from ..service.monitor import health_payload
from ..service.prometheus import CONTENT_TYPE, render
from ..service.queue import ServicePaths

__all__ = ["metrics_text", "MetricsHandler", "metrics_route"]


def _gate(env: AgiEnv, payload: dict[str, Any]) -> GateResult | None:
    from ..settings import AppSettings

    try:
        thresholds = AppSettings(env).service_health
    except Exception:  # noqa: BLE001 - a broken settings file: the metrics without the gate code
        return None
    return evaluate_gate(payload, allow_idle=thresholds.allow_idle, max_unhealthy=thresholds.max_unhealthy,
                         max_restart_rate=thresholds.max_restart_rate)


def metrics_text(apps_path: Sequence[str | os.PathLike] = ()) -> str:
    """The exposition text of every app with a service state file (an empty text when there is none)."""
    payloads, gates = [], {}
    paths = [os.fspath(p) for p in apps_path]
    for app in sorted(discover_apps(paths)):
        try:
            env = AgiEnv(app, apps_path=paths or None, verbose=0)
        except Exception:  # noqa: BLE001 - an app that cannot load has no service to report
            continue
        if not ServicePaths.of(env.share, env.app).state_file.is_file():
            continue
        payload = health_payload(env.share, env.app)
        payloads.append(payload)
        gate = _gate(env, payload)
        if gate is not None:
            gates[env.app] = gate
    return render(payloads, gates) if payloads else ""


class MetricsHandler(RequestHandler):
    """``GET /metrics``: the login rules of the page (Panel's auth provider), Prometheus text."""

    def initialize(self, apps_path: Sequence[str] = ()) -> None:
        self.apps_path = list(apps_path)

    def get_login_url(self) -> str:
        provider = self.application.auth_provider
        if provider.get_login_url is not None:
            return provider.get_login_url(self)
        return provider.login_url or "/login"

    async def prepare(self) -> None:
        provider = self.application.auth_provider
        user = await self._basic_user()
        if user is None and provider.get_user_async is not None:
            user = await provider.get_user_async(self)
        elif user is None:
            user = provider.get_user(self) if provider.get_user is not None else "default_user"
        self.current_user = user

    async def _basic_user(self) -> str | None:
        """A scraper's ``Authorization: Basic`` header, checked against the dashboard's password hash."""
        from ..passwords import verify_password

        password_hash = getattr(self.application.auth_provider, "_password_hash", None)
        header = self.request.headers.get("Authorization", "")
        if not password_hash or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        ok = await asyncio.to_thread(verify_password, password, password_hash)
        return (user or "scraper") if ok else None

    @authenticated
    async def get(self) -> None:
        text = await asyncio.to_thread(metrics_text, self.apps_path)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(text)


def metrics_route(apps_path: Sequence[str]) -> tuple[str, type, dict[str, Any]]:
    """The ``/metrics`` route for Panel's server (``extra_patterns``)."""
    return (r"/metrics", MetricsHandler, {"apps_path": list(apps_path)})
