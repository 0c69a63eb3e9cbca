"""One clear error per remote host: which host, what went wrong, and what to do about it."""
from __future__ import annotations

from typing import Literal

__all__ = ["RemoteHostError", "ErrorKind"]

ErrorKind = Literal["refused-input", "unreachable", "auth-refused", "host-key-unknown", "host-key-changed",
                    "no-python", "share-not-writable", "command-failed", "platform"]


class RemoteHostError(Exception):
    """A remote host cannot be used; ``kind`` lets callers and tests tell the cases apart, the message
    (one line, naming the host) is what the user reads."""

    def __init__(self, host: str, kind: ErrorKind, message: str) -> None:
        super().__init__(f"host {host}: {message}")
        self.host = host
        self.kind = kind
