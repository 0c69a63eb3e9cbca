"""Login for the served page: Panel's basic auth, checked against a password hash.

Panel's own basic auth keeps the password and compares it as text; this provider keeps only the
hash (:mod:`agilab_panel.passwords`) and checks it off the event loop, so other sessions stay
responsive while a login is verified. Any user name is accepted with the password.
"""
from __future__ import annotations

import asyncio
from typing import Any

from panel.auth import BasicAuthProvider, BasicLoginHandler

from ..passwords import verify_password

__all__ = ["PasswordAuthProvider"]


class _PasswordLoginHandler(BasicLoginHandler):
    password_hash = ""

    async def post(self) -> None:  # type: ignore[override]
        password = self.get_argument("password", "")
        self._password_ok = await asyncio.to_thread(verify_password, password, self.password_hash)
        super().post()

    def _validate(self, username: str, password: str) -> bool:
        return bool(username) and getattr(self, "_password_ok", False)


class PasswordAuthProvider(BasicAuthProvider):
    """Panel's login page and cookie, for one password given as its hash."""

    def __init__(self, password_hash: str, **kwargs: Any) -> None:
        verify_password("", password_hash)  # a damaged hash fails here, not at the first login
        self._password_hash = password_hash
        super().__init__(**kwargs)

    @property
    def login_handler(self) -> type:
        return type("PasswordLoginHandler", (_PasswordLoginHandler,), {
            "password_hash": self._password_hash,
            "_login_endpoint": self._login_endpoint,
            "_login_template": self._login_template,
        })
