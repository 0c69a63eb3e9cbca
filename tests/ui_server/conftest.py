"""The dashboard served in a subprocess on a free port, spoken to with plain HTTP and a real websocket."""
from __future__ import annotations

import asyncio
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
TITLE = "AGILAB · ORCHESTRATE"


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def outside_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one."""
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family == socket.AF_INET and not addr.address.startswith("127."):
                return addr.address
    return None


class Response:
    def __init__(self, status: int, headers: dict[str, str], cookies: list[str], body: str) -> None:
        self.status, self.headers, self.cookies, self.body = status, headers, cookies, body


class Served:
    """A running dashboard server: where it listens, its process and its output."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path, connect: str) -> None:
        self.proc, self.port, self.log, self.connect = proc, port, log, connect

    def request(self, path: str = "/", *, host: str | None = None, method: str = "GET", body: str | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        """One HTTP request to the server, with the Host header given (default: the address connected to)."""
        conn = http.client.HTTPConnection(self.connect, self.port, timeout=60)
        try:
            sent = {"Host": host or f"{self.connect}:{self.port}", **(headers or {})}
            if body is not None:
                sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
            conn.request(method, path, body=body, headers=sent)
            reply = conn.getresponse()
            return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()},
                            reply.headers.get_all("Set-Cookie") or [], reply.read().decode(errors="replace"))
        finally:
            conn.close()

    def websocket(self, *, host: str, origin: str, token: str = "", cookie: str = "") -> str:
        """Open the page's websocket with these Host and Origin headers; the first message, or why not."""
        from tornado.httpclient import HTTPClientError, HTTPRequest
        from tornado.websocket import websocket_connect

        async def connect() -> str:
            headers = {"Host": host, "Origin": origin}
            if cookie:
                headers["Cookie"] = cookie
            request = HTTPRequest(f"ws://{self.connect}:{self.port}/ws", headers=headers)
            try:
                conn = await websocket_connect(request, subprotocols=["bokeh", token] if token else None)
            except HTTPClientError as exc:
                return f"refused {exc.code}"
            try:
                message = await asyncio.wait_for(conn.read_message(), 60)
                return f"message {message}"
            finally:
                conn.close()

        return asyncio.run(connect())

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def descendants(self, marker: str) -> list[psutil.Process]:
        """Live processes under the server whose command line contains ``marker``."""
        found = []
        for proc in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                if marker in " ".join(proc.cmdline()) and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except psutil.Error:
                continue
        return found


def session_token(page: str) -> str:
    """The session token the served page hands its websocket."""
    match = re.search(r'"token":"([^"]+)"', page)
    assert match, "no session token in the page"
    return match.group(1)


def _wait_listening(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in psutil.net_connections("inet")):
            return
        time.sleep(0.2)
    raise AssertionError(f"the server did not listen on port {port} in 120 s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def start_server(tmp_path: Path, agilab_dirs: dict[str, Path]) -> Iterator[Callable[..., Served]]:
    """``start_server(*cli_args, env=..., code=...)``: serve in a subprocess (the CLI, or ``code`` run with
    ``{port}`` filled in) with the test's folders; every server is stopped after the test."""
    procs: list[subprocess.Popen] = []

    def start(*args: str, env: Mapping[str, str] | None = None, code: str | None = None,
              address: str = "127.0.0.1", connect: str | None = None) -> Served:
        port = free_port("0.0.0.0" if address == "0.0.0.0" else address)
        full_env = {k: v for k, v in os.environ.items() if k not in ("AGILAB_APPS_PATH", "AGILAB_PANEL_PASSWORD")}
        full_env.update({k: str(v) for k, v in agilab_dirs.items()}, PYTHONUNBUFFERED="1", **(env or {}))
        if code is not None:
            cmd = [sys.executable, "-c", code.format(port=port, address=address)]
        else:
            cmd = [sys.executable, "-m", "agilab_panel.cli", "serve", "--address", address, "--port", str(port), *args]
        log = tmp_path / f"server-{port}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append(proc)
        _wait_listening(proc, port, log)
        return Served(proc, port, log, connect or ("127.0.0.1" if address in ("0.0.0.0", "localhost") else address))

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the server and what it started
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
