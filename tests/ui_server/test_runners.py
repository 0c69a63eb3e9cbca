"""Visitors of the served page start no process by looking, and share one warm runner per app."""
from __future__ import annotations

import time

import pytest

MARKER = "agilab_panel.runtime.zygote"
APP_URL = "/?app=minimal_app"
# Sessions whose browser left are dropped within a second (Bokeh's default is 15 s, checked every 17 s).
QUICK_EXPIRY = ("from agilab_panel.ui.serve import serve; serve(port={port}, unused_session_lifetime_milliseconds=500, "
                "check_unused_sessions_milliseconds=500)")


def _wait_for(condition, what: str, timeout: float = 90) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def installed_env(installed) -> dict[str, str]:  # noqa: ANN001
    return {k: str(v) for k, v in installed("minimal_app").items()}


PANEL_SERVE = ("import sys; from panel.command import main; sys.argv = ['panel', 'serve', 'dashboards/orchestrate.py', "
               "'--address', '{address}', '--port', '{port}']; main()")


@pytest.mark.parametrize(("code", "path"), [(None, APP_URL), (PANEL_SERVE, "/orchestrate?app=minimal_app")],
                         ids=["agilab-panel serve", "panel serve dashboards/orchestrate.py"])
def test_plain_gets_of_the_page_start_no_runner(start_server, installed_env, code, path):
    served = start_server(env=installed_env, code=code)
    for _ in range(6):
        assert served.request(path).status == 200
    # answered after whatever the GETs above scheduled on the server's loop has taken its first step
    assert served.request("/static/js/bokeh.min.js").status == 200
    assert served.descendants(MARKER) == []


@pytest.mark.ui
def test_browser_sessions_share_one_runner_that_ends_after_the_last_one(start_server, installed_env):
    from playwright.sync_api import sync_playwright

    from ui.conftest import CHROMIUM_ARGS, chromium_or_skip

    served = start_server(env=installed_env, code=QUICK_EXPIRY)
    url = f"http://127.0.0.1:{served.port}{APP_URL}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_or_skip(), args=CHROMIUM_ARGS)
        try:
            contexts = [browser.new_context() for _ in range(3)]
            for context in contexts:
                page = context.new_page()
                page.set_default_timeout(60_000)
                page.goto(url)
                page.get_by_text("System settings").first.wait_for()
            _wait_for(lambda: served.descendants(MARKER), "the warm runner")
            runners = served.descendants(MARKER)
            assert len(runners) == 1
            extra = contexts[0].new_page()  # one more session of the same app: still the same runner
            extra.goto(url)
            extra.get_by_text("System settings").first.wait_for()
            assert [p.pid for p in served.descendants(MARKER)] == [runners[0].pid]
            for context in contexts:
                context.close()
        finally:
            browser.close()
    _wait_for(lambda: not served.descendants(MARKER), "the runner to end after its sessions")
    assert served.proc.poll() is None  # the server itself runs on
