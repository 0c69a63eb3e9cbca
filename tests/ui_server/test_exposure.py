"""What the served page exposes: only its own host names, and nothing beyond loopback without a login."""
from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlencode, urlparse

import psutil
import pytest

from .conftest import ROOT, TITLE, free_port, outside_address, session_token

PASSWORD = "correct horse battery staple"


def test_the_page_answers_only_for_the_host_names_it_is_served_as(start_server):
    served = start_server()
    for host in (f"127.0.0.1:{served.port}", f"localhost:{served.port}", "localhost"):
        reply = served.request("/", host=host)
        assert reply.status == 200 and TITLE in reply.body, host
    for host in (f"rebind.example:{served.port}", "rebind.example", f"192.0.2.200:{served.port}", "localhost.example"):
        reply = served.request("/", host=host)
        assert reply.status == 403 and TITLE not in reply.body, host
    assert served.request("/static/js/bokeh.min.js", host=f"localhost:{served.port}").status == 200
    assert served.request("/static/js/bokeh.min.js", host=f"rebind.example:{served.port}").status == 403


def test_the_websocket_refuses_another_host_name_even_from_an_allowed_origin(start_server):
    served = start_server()
    own = f"127.0.0.1:{served.port}"
    token = session_token(served.request("/").body)
    assert '"msgtype": "ACK"' in served.websocket(host=own, origin=f"http://{own}", token=token)
    token = session_token(served.request("/").body)
    # Bokeh checks the Origin only; a request naming another host is refused whatever its Origin
    assert served.websocket(host=f"rebind.example:{served.port}", origin=f"http://{own}", token=token) == "refused 403"
    assert served.websocket(host=f"rebind.example:{served.port}", origin=f"http://rebind.example:{served.port}",
                            token=token) == "refused 403"


def test_extra_host_names_are_answered_when_asked_for(start_server):
    served = start_server("--allow-host", "dash.example.org")
    assert served.request("/", host="dash.example.org").status == 200
    assert served.request("/", host="other.example.org").status == 403


@pytest.mark.parametrize("address", ["0.0.0.0", "outside"])
def test_serving_beyond_loopback_without_a_login_is_refused(address, agilab_dirs):
    if address == "outside":
        address = outside_address() or pytest.skip("this machine has no non-loopback IPv4 address to serve on")
    port = free_port("0.0.0.0")
    env = {k: v for k, v in os.environ.items() if k != "AGILAB_PANEL_PASSWORD"}
    done = subprocess.run([sys.executable, "-m", "agilab_panel.cli", "serve", "--address", address, "--port", str(port)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "exposes the dashboard beyond this machine" in lines[0]
    assert "AGILAB_PANEL_PASSWORD" in lines[0] and "--password-file" in lines[0] and "--oauth-provider" in lines[0]
    assert not [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.laddr.port == port]


def _password_source(kind: str, tmp_path) -> tuple[list[str], dict[str, str]]:
    if kind == "environment":
        return [], {"AGILAB_PANEL_PASSWORD": PASSWORD}
    secret = tmp_path / "password"
    if kind == "file":
        secret.write_text(PASSWORD + "\n")
    else:  # the file holds only the hash the CLI prints
        hashed = subprocess.run([sys.executable, "-m", "agilab_panel.cli", "hash-password"], input=PASSWORD + "\n",
                                capture_output=True, text=True, cwd=ROOT, timeout=60, check=True).stdout.strip()
        assert hashed.startswith("scrypt$") and PASSWORD not in hashed
        secret.write_text(hashed + "\n")
    secret.chmod(0o600)
    return ["--password-file", str(secret)], {}


@pytest.mark.parametrize("kind", ["environment", "file", "hash file"])
def test_a_password_login_guards_the_page_served_beyond_loopback(kind, start_server, tmp_path):
    args, env = _password_source(kind, tmp_path)
    connect = outside_address() or "127.0.0.1"
    served = start_server(*args, env=env, address="0.0.0.0", connect=connect)
    own = f"{connect}:{served.port}"

    refused = served.request("/")
    assert refused.status == 302 and urlparse(refused.headers["location"]).path.endswith("/login")
    assert TITLE not in refused.body
    assert served.websocket(host=own, origin=f"http://{own}") == "refused 403"
    wrong = served.request("/login", method="POST", body=urlencode({"username": "ana", "password": PASSWORD + "x"}))
    assert wrong.status == 302 and "error=" in wrong.headers["location"]
    assert not [c for c in wrong.cookies if c.startswith("user=")]

    right = served.request("/login", method="POST", body=urlencode({"username": "ana", "password": PASSWORD}))
    cookie = "; ".join(c.split(";")[0] for c in right.cookies if c.startswith(("user=", "id_token=")))
    assert right.status == 302 and "user=" in cookie
    page = served.request("/", headers={"Cookie": cookie})
    assert page.status == 200 and TITLE in page.body
    assert '"msgtype": "ACK"' in served.websocket(host=own, origin=f"http://{own}", token=session_token(page.body),
                                                  cookie=cookie)
    assert served.request("/", host=f"rebind.example:{served.port}", headers={"Cookie": cookie}).status == 403
    assert PASSWORD not in served.output()
    assert PASSWORD not in " ".join(psutil.Process(served.proc.pid).cmdline())


def test_a_damaged_password_file_is_refused_in_one_line(tmp_path, agilab_dirs):
    secret = tmp_path / "password"
    secret.write_text("scrypt$16384$8$1$not-base64!$x\n")
    done = subprocess.run([sys.executable, "-m", "agilab_panel.cli", "serve", "--address", "0.0.0.0", "--port",
                           str(free_port("0.0.0.0")), "--password-file", str(secret)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(secret) in lines[0] and "damaged" in lines[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--address", "bad host"], "not an IPv4/IPv6 address or a DNS name"),
    (["--address", "192.0.2.254"], "192.0.2.254 is not an address of this machine"),
    (["--port", "70000"], "port must be an integer 0..65535"),
    (["--allow-host", "*"], "allowed host '*'"),
    (["--allow-host", "dash.example.org:443"], "without a port"),
])
def test_an_unusable_address_port_or_host_name_is_refused_in_one_line(args, message, agilab_dirs):
    done = subprocess.run([sys.executable, "-m", "agilab_panel.cli", "serve", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr


def test_an_oauth_login_guards_the_page_served_beyond_loopback(start_server):
    served = start_server("--oauth-provider", "github", "--oauth-key", "agilab-test-client",
                          env={"PANEL_OAUTH_SECRET": "not-a-real-secret"}, address="0.0.0.0")
    own = f"127.0.0.1:{served.port}"
    refused = served.request("/")
    assert refused.status == 302 and urlparse(refused.headers["location"]).path.endswith("/login")
    assert TITLE not in refused.body
    login = served.request("/login")
    target = urlparse(login.headers["location"])
    assert login.status == 302 and target.netloc == "github.com" and "client_id=agilab-test-client" in target.query
    assert served.websocket(host=own, origin=f"http://{own}") == "refused 403"
    assert "not-a-real-secret" not in served.output()


@pytest.mark.parametrize("guests", [{"oauth_optional": True}, {"oauth_guest_endpoints": ["/"]}])
def test_oauth_guest_access_is_refused_beyond_loopback(guests):
    from agilab_panel.ui.serve import serve

    port = free_port("0.0.0.0")
    with pytest.raises(ValueError, match="let visitors in without a login"):
        serve(address="0.0.0.0", port=port, oauth_provider="github", **guests)
    assert not [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.laddr.port == port]


def test_a_server_started_in_a_thread_checks_the_host_too():
    import http.client

    from agilab_panel.ui.serve import serve

    port = free_port()
    thread = serve(port=port, threaded=True)
    try:
        statuses = {}
        for host in ("127.0.0.1", "rebind.example"):
            for _ in range(600):  # until it listens
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                try:
                    conn.request("GET", "/", headers={"Host": f"{host}:{port}"})
                    statuses[host] = conn.getresponse().status
                    break
                except ConnectionRefusedError:
                    thread.join(0.1)
                finally:
                    conn.close()
        assert statuses == {"127.0.0.1": 200, "rebind.example": 403}
    finally:
        thread.stop()
        thread.join(30)
    assert not thread.is_alive()
