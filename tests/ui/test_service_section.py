"""Service mode in a browser, on minimal_app installed: START, SUBMIT, the health table and the queue
counts fill, STOP; the service's processes are gone after it, and the page made no request elsewhere."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from service.folders import empty_service_folder
from .conftest import ROOT, Served, assert_clean, chromium_or_skip, open_page, serve_dashboard
from .test_affordances import _unnamed_controls

pytestmark = [pytest.mark.ui, pytest.mark.integration, pytest.mark.timeout(900)]
APP = "minimal_app"


@pytest.fixture(scope="module")
def served(installed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:  # noqa: ANN001
    """The dashboard over a home where minimal_app is installed (the service runs from its worker environment)."""
    chromium_or_skip()
    dirs = dict(installed(APP))
    yield from serve_dashboard(dirs, tmp_path_factory.mktemp("service_dashboard"))
    state = dirs["AGI_CLUSTER_SHARE"] / "service" / APP / "service.json"
    if state.exists():  # a failed test leaves no service behind
        env = {**os.environ, **{k: str(v) for k, v in dirs.items()}}
        subprocess.run([sys.executable, "-m", "agilab_panel.cli", "service", "stop", "--app", APP], cwd=ROOT,
                       env=env, capture_output=True, timeout=120)


def _button(page, name: str):  # noqa: ANN001, ANN202 - Playwright objects
    return page.get_by_role("button", name=name, exact=True)


def _cluster_processes(cluster_dir: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["pid", "cmdline", "status"])
            if p.info["status"] != psutil.STATUS_ZOMBIE and cluster_dir in " ".join(p.info["cmdline"] or [])]


def test_start_submit_watch_the_table_fill_and_stop(browser, served: Served, installed, shot) -> None:  # noqa: ANN001
    share = Path(installed(APP)["AGI_CLUSTER_SHARE"]) / "service" / APP
    empty_service_folder(share.parent.parent, APP)
    log_start = served.log_size()
    page = open_page(browser, served, f"?app={APP}")
    try:
        page.get_by_role("button", name=re.compile(r"^Service mode(\s|$)")).first.click()
        page.get_by_text("No service data yet").first.wait_for()
        page.get_by_text("AGI.serve(").first.wait_for()
        page.get_by_role("button", name=re.compile(r"^Service settings")).first.click()
        page.get_by_label("poll_interval").wait_for()
        shot(page, "20-service-idle", page.get_by_text("No service data yet").first)

        _button(page, "START").click()
        page.get_by_text(re.compile(r"START: started the service of app minimal_app")).first.wait_for(timeout=180_000)
        state = json.loads((share / "service.json").read_text())
        assert len(_cluster_processes(state["cluster_dir"])) == 3  # scheduler and two workers
        table = page.locator(".tabulator").filter(has_text="heartbeat_state")
        table.get_by_text("127.0.0.1-1", exact=True).wait_for(timeout=60_000)  # the health table fills
        assert table.get_by_text("127.0.0.1-0", exact=True).count() == 1
        page.get_by_text("No service data yet").first.wait_for(state="hidden")
        shot(page, "21-service-running", table)
        page.wait_for_timeout(1000)  # the plots drew
        assert _unnamed_controls(page) == []  # every control of the section has a name a screen reader says

        _button(page, "SUBMIT").click()
        page.get_by_text(re.compile(r"Submitted")).first.wait_for(timeout=120_000)
        assert "await AGI.submit(" in page.locator(".codehilite, pre").filter(has_text="AGI.submit").first.inner_text()
        page.get_by_text(re.compile(r"done\s*2\b")).first.wait_for(timeout=180_000)  # the queue counts, live
        shot(page, "22-service-submitted", table)

        _button(page, "STOP").click()
        page.get_by_text(re.compile(r"STOP: stopped the service of app minimal_app")).first.wait_for(timeout=180_000)
        assert not (share / "service.json").exists() and _cluster_processes(state["cluster_dir"]) == []
        page.get_by_text(re.compile(r"\bidle\b")).first.wait_for(timeout=30_000)  # the monitor follows the stop
        shot(page, "23-service-stopped")
        assert_clean(page)
        served.assert_log_clean(log_start)
    finally:
        page.context.close()


def test_the_standalone_monitor_follows_a_service_started_and_stopped_elsewhere(browser, installed, shot) -> None:  # noqa: ANN001
    """dashboards/service_monitor.py under ``panel serve``: offline, and live while the command line
    starts and stops the service (no reload)."""
    import socket
    import time
    import urllib.request

    dirs = {k: str(v) for k, v in installed(APP).items()}
    empty_service_folder(Path(dirs["AGI_CLUSTER_SHARE"]), APP)
    env = {**{k: v for k, v in os.environ.items() if k != "AGILAB_APPS_PATH"}, **dirs, "PYTHONUNBUFFERED": "1"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = Path(dirs["AGILAB_HOME"]).parent / f"monitor-{port}.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "panel", "serve", "dashboards/service_monitor.py", "--address",
                                   "127.0.0.1", "--port", str(port), "--args", "--app", APP], cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    cli = [sys.executable, "-m", "agilab_panel.cli", "service"]
    context = None
    try:
        url = f"http://127.0.0.1:{port}/service_monitor"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=30):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        served = Served(url, {}, server, log)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        external, errors = [], []
        context.route(lambda u: not (u.startswith(f"http://127.0.0.1:{port}/") or u.startswith(("data:", "blob:", "about:"))),
                      lambda route: (external.append(route.request.url), route.abort()))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        page.get_by_text("No service data yet").first.wait_for()

        started = subprocess.run([*cli, "start", "--app", APP, "--workers", '{"127.0.0.1": 2}'], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stderr
        page.locator(".tabulator").get_by_text("127.0.0.1-1", exact=True).wait_for(timeout=60_000)  # live, no reload
        page.get_by_text(re.compile(r"2 loop\(s\) healthy")).first.wait_for()
        shot(page, "24-monitor-running")
        stopped = subprocess.run([*cli, "stop", "--app", APP], cwd=ROOT, env=env, capture_output=True, text=True,
                                 timeout=300)
        assert stopped.returncode == 0, stopped.stderr
        page.get_by_text(re.compile(r"no service is running for app minimal_app")).first.wait_for(timeout=30_000)
        assert not external and not errors, (external, errors)
        served.assert_log_clean()
    finally:
        if context is not None:
            context.close()
        os.killpg(server.pid, 15)
        server.wait(30)
