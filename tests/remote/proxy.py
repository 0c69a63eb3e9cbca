"""An HTTPS (CONNECT) proxy on the simulated hosts' gateway: their only way out, to the package index.

The simulated hosts have no route beyond their private subnet (this machine does not forward), like
hosts behind a site proxy. Their sshd sets ``HTTPS_PROXY`` to this proxy, so uv on a host reaches its
package index for third-party wheels and nothing else: only CONNECT to port 443 is relayed.
"""
from __future__ import annotations

import select
import socket
import socketserver
import threading

__all__ = ["ConnectProxy"]


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        request = self.rfile.readline(8192).decode("latin-1").split()
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass
        if len(request) < 2 or request[0] != "CONNECT" or not request[1].endswith(":443"):
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            return
        host, _, port = request[1].rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=30)
        except OSError:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        self._relay(self.connection, upstream)

    @staticmethod
    def _relay(a: socket.socket, b: socket.socket) -> None:
        with b:
            sockets = [a, b]
            while True:
                ready, _, broken = select.select(sockets, [], sockets, 120)
                if broken or not ready:
                    return
                for src in ready:
                    try:
                        data = src.recv(65536)
                        if not data:
                            return
                        (b if src is a else a).sendall(data)
                    except OSError:  # either side went away
                        return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - a dropped client is not news
        pass


class ConnectProxy:
    """Listen on ``address`` (the gateway's address only) in a daemon thread until :meth:`close`."""

    def __init__(self, address: str, port: int = 0) -> None:
        self._server = _Server((address, port), _Handler)
        self.url = f"http://{address}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="connect-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
