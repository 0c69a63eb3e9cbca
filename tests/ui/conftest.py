"""Browser tests: the dashboard served in a subprocess over temporary folders, driven in headless Chromium.

The server runs ``python -m agilab_panel.cli serve`` (``agilab_panel.ui.serve.serve`` when the CLI is
not there) with every per-user path of SPEC §3 pointed at a temporary folder. Chromium is the system's
(``/usr/bin/chromium`` or ``CHROMIUM`` in the environment): Playwright does not download browsers here.
Screenshots of each step go to ``test-artifacts/ui/``.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
APP = "flight_telemetry"
SMALL_ARGS = {"n_aircraft": 4, "rows_per_file": 5000}

pytestmark = pytest.mark.ui


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chromium_or_skip() -> str:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (install Debian's chromium, or set CHROMIUM): browser tests need it")
    return CHROMIUM


class Served:
    """A running dashboard: its URL and the folders it writes to."""

    def __init__(self, url: str, dirs: dict[str, Path], proc: subprocess.Popen, log: Path) -> None:
        self.url, self.dirs, self.proc, self.log = url, dirs, proc, log

    @property
    def settings_file(self) -> Path:
        return self.dirs["AGILAB_HOME"] / "apps" / APP / "app_settings.toml"

    @property
    def export_csv(self) -> Path:
        return self.dirs["AGILAB_EXPORT_ABS"] / APP / "export.csv"

    def log_size(self) -> int:
        """Where the server log ends now (see :meth:`assert_log_clean`)."""
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def log_problems(self, start: int = 0) -> list[str]:
        """Lines of the server log after byte ``start`` that report an error."""
        with open(self.log, "rb") as handle:
            handle.seek(start)
            text = handle.read().decode(errors="replace")
        return [line for line in text.splitlines() if _LOG_PROBLEM.search(line)]

    def assert_log_clean(self, start: int = 0) -> None:
        """The server logged no error since byte ``start``."""
        problems = self.log_problems(start)
        assert not problems, "the server logged:\n" + "\n".join(problems[:20]) + "\n" + self.log_tail()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _seed_small_settings(home: Path) -> None:
    """The app's own settings with small args and one worker slot (the test sets the worker map)."""
    seed = (ROOT / "apps" / APP / "app_settings.toml").read_text()
    for key, value in SMALL_ARGS.items():
        seed = re.sub(rf"(?m)^{key}\s*=\s*\d+", f"{key} = {value}", seed)
    seed = re.sub(r'(?m)^"127\.0\.0\.1"\s*=\s*\d+', '"127.0.0.1" = 1', seed)
    target = home / "apps" / APP / "app_settings.toml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(seed)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    chromium_or_skip()
    base = tmp_path_factory.mktemp("dashboard")
    dirs = {
        "AGILAB_HOME": base / "agilab_home",
        "AGI_CLUSTER_SHARE": base / "share",
        "AGILAB_EXPORT_ABS": base / "export",
        "AGILAB_LOG_ABS": base / "log" / "execute",
    }
    _seed_small_settings(dirs["AGILAB_HOME"])
    yield from serve_dashboard(dirs, base)


_SERVE_WITH_STACK_DUMPS = (
    "import faulthandler, runpy, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
    "sys.argv[0] = 'agilab_panel.cli'; runpy.run_module('agilab_panel.cli', run_name='__main__', alter_sys=True)"
)


def serve_dashboard(dirs: dict[str, Path], base: Path) -> Iterator[Served]:
    """Serve the dashboard over ``dirs`` (its log in ``base``) until the generator is closed."""
    env = {k: v for k, v in os.environ.items() if k != "AGILAB_APPS_PATH"}
    env.update({k: str(v) for k, v in dirs.items()}, PYTHONUNBUFFERED="1")
    port = _free_port()
    # SIGUSR1 makes the server write every thread's stack to its log: what a failed test reports.
    cmd = [sys.executable, "-c", _SERVE_WITH_STACK_DUMPS, "serve", "--port", str(port)]
    log = base / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    served = Served(url, dirs, proc, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the dashboard server exited with {proc.returncode}:\n{served.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the dashboard server did not answer in 90 s:\n{served.log_tail()}")
                time.sleep(0.3)
        yield served
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the workers it started
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_or_skip(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


_LOCAL_SCHEMES = ("data:", "blob:", "about:")
# What a server log line says when something failed: a traceback, a logged error, an uncaught exception.
_LOG_PROBLEM = re.compile(r"Traceback|\bERROR\b|Exception|\bError:")


def open_page(browser: object, served: Served, path: str = "") -> object:
    """A new browser page on the dashboard that records page errors (``page.js_errors``) and refuses, and
    records (``page.external_requests``), every request to another host: the page must need nothing else."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    external: list[str] = []
    origin = served.url.rstrip("/")

    def on_error(exc: object) -> None:
        errors.append(str(exc))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with open(ARTIFACTS / "js-errors.txt", "a") as out:  # the whole stack, for diagnosis
            out.write(f"{exc}\n{getattr(exc, 'stack', '')}\n\n")

    def elsewhere(url: str) -> bool:
        return not (url == origin or url.startswith(origin + "/") or url.startswith(_LOCAL_SCHEMES))

    def refuse(route: object) -> None:
        external.append(route.request.url)  # type: ignore[attr-defined]
        route.abort("blockedbyclient")  # type: ignore[attr-defined]

    context.route(elsewhere, refuse)
    page.on("pageerror", on_error)
    page.js_errors = errors  # type: ignore[attr-defined]
    page.external_requests = external  # type: ignore[attr-defined]
    page.goto(served.url + path)
    page.get_by_text("System settings").first.wait_for()
    return page


def assert_clean(page: object) -> None:
    """No page error and no request to another host so far."""
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]
    assert not page.external_requests, page.external_requests  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed browser test's report ends with what the server logged meanwhile: a timeout in the browser
    often has its cause on the server side."""
    outcome = yield
    report = outcome.get_result()
    served = item.funcargs.get("served") if hasattr(item, "funcargs") else None
    if report.failed and report.when == "call" and isinstance(served, Served):
        start = getattr(item, "_log_start", 0)
        if served.proc.poll() is None:  # every thread's stack: where a request that never ended waits
            os.kill(served.proc.pid, signal.SIGUSR1)
            time.sleep(1.0)
        with open(served.log, "rb") as handle:
            handle.seek(start)
            text = handle.read().decode(errors="replace")
        report.sections.append(("server log during the test, then its threads (last 20,000 characters)",
                                text[-20000:]))


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: object, served: Served) -> Iterator[object]:
    """A page of the dashboard; the test fails on a page error, a request to another host or a server error."""
    start = request.node._log_start = served.log_size()
    page = open_page(browser, served)
    try:
        yield page
        assert_clean(page)
        served.assert_log_clean(start)
    finally:
        page.context.close()  # type: ignore[attr-defined]


@pytest.fixture
def shot() -> object:
    """``shot(page, "name", locator=None)`` saves test-artifacts/ui/<name>.png (the locator's box if given)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page: object, name: str, locator: object | None = None) -> Path:
        path = ARTIFACTS / f"{name}.png"
        if locator is not None:  # bring it to the upper third of the view
            locator.evaluate("e => e.scrollIntoView({block: 'start'})")  # type: ignore[attr-defined]
            page.mouse.wheel(0, -250)  # type: ignore[attr-defined]
            page.wait_for_timeout(400)  # type: ignore[attr-defined]
        page.screenshot(path=str(path))  # type: ignore[attr-defined]
        return path

    return take
