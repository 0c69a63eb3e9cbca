"""Shared pieces of the page benchmarks: a served page in a subprocess, headless Chromium, and probes
that tell when the page is on screen.

The server runs the calling script again with ``--serve PORT`` (its routes are the script's own), with
every per-user folder in a temporary directory, so a benchmark never touches the user's apps or
settings. Chromium is /usr/bin/chromium (or ``CHROMIUM``).
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1400, "height": 1000}

# Polls every animation frame from the first script on; records when the Bokeh document is fully rendered.
RENDER_PROBE = """
(() => {
  const poll = () => {
    const docs = window.Bokeh && window.Bokeh.documents;
    if (docs && docs.length && docs[0].roots().length && docs.every((d) => d.is_idle)) {
      window.__rendered_ms = performance.now();
      return;
    }
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
})();
"""

# Records the last moment the page was busy with an update: a message from the server arrived (not
# counting the acknowledgements of the page's own messages, which change nothing on screen), or a Bokeh
# view was still rendering at an animation frame. Once nothing happened for a while, that moment (plus
# one frame) is when the update was on screen. Also records the time of the latest click.
SETTLE_PROBE = """
(() => {
  window.__busy_ms = 0;
  window.__click_ms = 0;
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      let counted = true;  // a Bokeh message is a header frame, then its other frames
      this.addEventListener("message", (event) => {
        if (typeof event.data === "string" && event.data.startsWith('{"msgid"')) {
          counted = !/"msgtype": *"OK"/.test(event.data);
        }
        if (counted) window.__busy_ms = performance.now();
      });
    }
  };
  document.addEventListener("click", () => { window.__click_ms = performance.now(); }, true);
  const poll = () => {
    const index = window.Bokeh && window.Bokeh.index;
    if (index) {
      for (const view of index) {
        if (!view.has_finished()) { window.__busy_ms = performance.now(); break; }
      }
    }
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
})();
"""


# The first rendered text node (shadow roots included) that starts with a text, or matches a regular
# expression; null when there is none. A plain walk of the DOM, polled a few times a second: Playwright's
# role and text locators compute the accessibility tree or styles at every animation frame while they
# wait, on the main thread the page needs for the very update being timed (a measurable share of a second
# on this page).
TEXT_SHOWN = """([text, pattern]) => {
  const regex = pattern ? new RegExp(pattern) : null;
  const walk = (root) => {
    const texts = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = texts.nextNode(); node; node = texts.nextNode()) {
      const value = node.nodeValue.trim();
      const parent = node.parentElement;
      if ((regex ? regex.test(value) : value.startsWith(text)) && parent && parent.getClientRects().length) return value;
    }
    for (const el of root.querySelectorAll('*')) {
      const found = el.shadowRoot && walk(el.shadowRoot);
      if (found) return found;
    }
    return null;
  };
  return walk(document);
}"""


def text_shown(page, text: str = "", pattern: str = "") -> str | None:  # noqa: ANN001
    """The rendered text that starts with ``text`` (or matches the regular expression ``pattern``), if any
    (see :data:`TEXT_SHOWN`)."""
    return page.evaluate(TEXT_SHOWN, [text, pattern])


def wait_text(page, text: str = "", pattern: str = "", timeout: float = 120_000) -> str:  # noqa: ANN001
    """Wait until :func:`text_shown` finds ``text`` (or ``pattern``), checking 5 times a second; returns it."""
    return page.wait_for_function(TEXT_SHOWN, arg=[text, pattern], polling=200, timeout=timeout).json_value()


def fresh_page(browser, url: str, timeout: float = 60_000):  # noqa: ANN001, ANN201 - a Playwright page
    """A new page on ``url`` carrying :data:`SETTLE_PROBE`, once the page shows its first section."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(SETTLE_PROBE)
    page = context.new_page()
    page.set_default_timeout(timeout)
    page.goto(url)
    page.get_by_text("System settings").first.wait_for()
    return page


def click_ms(page, target) -> float:  # noqa: ANN001
    """Click ``target``; returns the page time of the click (recorded by :data:`SETTLE_PROBE`)."""
    target.click()
    return float(page.evaluate("window.__click_ms"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"server did not answer at {url}")


@contextmanager
def served(script: str | Path, *args: str, ready: str = "/") -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``script --serve PORT *args`` with a throwaway AGILAB home; yields the base URL and the process,
    which is ended on exit. Its standard error is printed when it fails to answer."""
    with tempfile.TemporaryDirectory(prefix="agilab-bench-") as tmp:
        env = dict(os.environ, AGILAB_HOME=f"{tmp}/home", AGI_CLUSTER_SHARE=f"{tmp}/share",
                   AGILAB_EXPORT_ABS=f"{tmp}/export", AGILAB_LOG_ABS=f"{tmp}/log")
        env.pop("AGILAB_APPS_PATH", None)
        port = free_port()
        errors = Path(tmp) / "server.err"
        with errors.open("wb") as err:
            proc = subprocess.Popen([sys.executable, str(script), "--serve", str(port), *args], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=err)
        base = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_http(base + ready, proc)
            except SystemExit:
                print(errors.read_text(errors="replace")[-4000:], file=sys.stderr)
                raise
            yield base, proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def launch(playwright):  # noqa: ANN001, ANN201 - a Playwright instance and its Browser
    """Headless Chromium (the system's), refused in one line when absent."""
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM} (set CHROMIUM)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def section_header(page, title: str):  # noqa: ANN001, ANN201 - a Playwright page and locator
    """The header button of the page's section titled ``title`` (its hint follows the title)."""
    return page.get_by_role("button", name=re.compile(rf"^{re.escape(title)}(\s|$)")).first


def render_ms(browser, url: str) -> float:  # noqa: ANN001
    """Milliseconds from navigation to the first complete render of ``url`` on a fresh page."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(RENDER_PROBE)
    page = context.new_page()
    page.goto(url, wait_until="commit")
    page.wait_for_function("window.__rendered_ms !== undefined", timeout=120_000)
    value = page.evaluate("window.__rendered_ms")
    context.close()
    return float(value)


def settled_ms(page, quiet_ms: int = 700, timeout: float = 120_000) -> float:  # noqa: ANN001
    """The page time (``performance.now()``) when it last was busy, once it stayed quiet ``quiet_ms``
    (the page must carry :data:`SETTLE_PROBE`). The quiet wait itself is not part of the figure."""
    page.wait_for_function(f"performance.now() - window.__busy_ms > {quiet_ms}", timeout=timeout, polling=50)
    return float(page.evaluate("window.__busy_ms"))


def page_epoch_ms(page, ms: float) -> float:  # noqa: ANN001
    """A page time (``performance.now()``) as milliseconds since the epoch, the clock of ``time.time()``."""
    return float(page.evaluate("performance.timeOrigin")) + ms


def heap_and_nodes(page) -> tuple[float, int]:  # noqa: ANN001
    """Chromium's JS heap in use (MB, after a garbage collection) and the number of DOM nodes of ``page``."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("HeapProfiler.collectGarbage")
    cdp.send("Performance.enable")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    cdp.detach()
    return metrics["JSHeapUsedSize"] / 1e6, int(metrics["Nodes"])
