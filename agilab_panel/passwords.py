"""The served page's password: read from a file or the environment, kept only as a salted hash.

A password never goes on a command line (shell history, ``ps``) or into a log. The server holds its
scrypt hash and compares in constant time; a password file may hold the hash itself
(``agilab-panel hash-password`` prints one), so not even the file keeps the password.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

__all__ = ["PASSWORD_ENV", "hash_password", "is_password_hash", "verify_password", "load_password_hash"]

PASSWORD_ENV = "AGILAB_PANEL_PASSWORD"
_SCHEME = "scrypt"
_N, _R, _P = 2**14, 8, 1  # about 16 MB and a few tens of ms per check: slow to guess, cheap to log in
_MAX_FILE = 4096


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=32)


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``password`` with a fresh random salt."""
    if not isinstance(password, str) or not password:
        raise ValueError("the password is empty")
    salt = os.urandom(16)
    return f"{_SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(_derive(password, salt, _N, _R, _P))}"


def _parse(hashed: str) -> tuple[int, int, int, bytes, bytes]:
    parts = hashed.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        raise ValueError("a password hash looks like scrypt$n$r$p$salt$hash (see `agilab-panel hash-password`)")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as exc:
        raise ValueError(f"the password hash is damaged: {exc}") from exc
    if n < 2 or n & (n - 1) or not 0 < r <= 64 or not 0 < p <= 16 or n > 2**20 or len(digest) != 32:
        raise ValueError("the password hash has parameters out of range")
    return n, r, p, salt, digest


def is_password_hash(text: str) -> bool:
    return text.startswith(_SCHEME + "$")


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches ``hashed`` (constant-time comparison)."""
    n, r, p, salt, digest = _parse(hashed)
    return hmac.compare_digest(_derive(password, salt, n, r, p), digest)


def _as_hash(text: str, origin: str) -> str:
    if not text.strip():
        raise ValueError(f"{origin} is empty")
    if is_password_hash(text.strip()):
        try:
            _parse(text.strip())
        except ValueError as exc:
            raise ValueError(f"{origin}: {exc}") from exc
        return text.strip()
    return hash_password(text)  # a password is taken exactly as written (line ends aside)


def load_password_hash(password_file: str | os.PathLike | None = None) -> str | None:
    """The hash of the page's password from ``password_file`` (its first line: a password or a hash),
    else from ``$AGILAB_PANEL_PASSWORD``; None when neither is given."""
    if password_file is not None:
        path = Path(password_file).expanduser()
        try:
            if path.stat().st_size > _MAX_FILE:
                raise ValueError(f"password file {path} is larger than {_MAX_FILE} bytes: is it the right file?")
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"password file {path}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"password file {path} is not UTF-8 text") from exc
        return _as_hash(lines[0] if lines else "", f"password file {path}")
    value = os.environ.get(PASSWORD_ENV)
    if value is None:
        return None
    return _as_hash(value, f"${PASSWORD_ENV}")
