"""In Chromium, the page over the two simulated SSH hosts (``sim_hosts``: network namespaces, each with
its own sshd and user): a host never seen is shown with its key and a Trust button that records exactly
that key, a host whose key changed is refused with no button; then a worker map of the two hosts,
INSTALL with each host's steps, a cluster RUN whose progress plot has a slot on each host, and no
process left on either host once the page's server has ended."""
from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from .conftest import Served, _seed_small_settings, assert_clean, open_page, serve_dashboard

pytestmark = [pytest.mark.ui, pytest.mark.integration, pytest.mark.timeout(1500)]

# The workers of the progress plot, as the browser holds them: the columns of its Bokeh data sources.
_PLOT_WORKERS = """() => {
  const found = new Set();
  for (const doc of (window.Bokeh ? window.Bokeh.documents : [])) {
    for (const model of doc._all_models.values()) {
      const data = model.data;
      if (!data || typeof data !== "object") continue;
      const column = data instanceof Map ? data.get("worker") : data.worker;
      if (column) for (const w of column) found.add(String(w));
    }
  }
  return [...found];
}"""


def _key(host: Any) -> asyncssh.SSHKey:
    return asyncssh.read_public_key(str(host.host_key.with_suffix(".pub")))


@pytest.fixture(scope="module")
def served(sim_hosts: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The dashboard whose SSH settings reach the simulated hosts (known_hosts and per-host users), the
    share every host can write, and a umask that lets the hosts' users write what the run creates there."""
    from .conftest import chromium_or_skip

    chromium_or_skip()
    base = tmp_path_factory.mktemp("remote-dashboard")
    dirs = {"AGILAB_HOME": base / "agilab_home", "AGI_CLUSTER_SHARE": sim_hosts.share,
            "AGILAB_EXPORT_ABS": base / "export", "AGILAB_LOG_ABS": base / "log" / "execute"}
    _seed_small_settings(dirs["AGILAB_HOME"])
    config = base / "ssh_config"
    config.write_text("".join(f"Host {h.address}\n  User {h.user}\n" for h in sim_hosts.hosts))
    known = base / "known_hosts"
    known.write_bytes(sim_hosts.known_hosts.read_bytes())
    old = os.umask(0)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AGILAB_SSH_KNOWN_HOSTS", str(known))
            mp.setenv("AGILAB_SSH_CONFIG", str(config))
            server = serve_dashboard(dirs, base)
            served = next(server)
    finally:
        os.umask(old)
    served.known_hosts = known
    served.stop = server.close
    try:
        yield served
    finally:
        server.close()


def _set_hosts(page: Any, sim: Any, served: Served) -> list[str]:
    """The worker map of the two hosts (one slot each) and the SSH key, set in the page."""
    addresses = [h.address for h in sim.hosts]
    field = page.get_by_label("Worker map")
    field.fill(json.dumps({a: 1 for a in addresses}))
    field.press("Enter")
    page.get_by_text("2 worker slots").first.wait_for()
    key = page.get_by_label("SSH key path")
    key.fill(str(sim.client_key))
    key.press("Enter")
    deadline = time.monotonic() + 30
    while str(sim.client_key) not in served.settings_file.read_text():
        assert time.monotonic() < deadline, served.settings_file.read_text()
        time.sleep(0.2)
    return addresses


def _host_row(page: Any, host: str) -> Any:
    name = page.locator('td[data-field="host"]', has_text=re.compile(rf"^{re.escape(host)}$"))
    return page.locator("table.host-status tbody tr").filter(has=name)


def _columns(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("table.host-status th").all_inner_texts() if t.strip()]


def _cell(row: Any, field: str) -> str:
    return row.locator(f'td[data-field="{field}"]').inner_text().strip()


def test_an_unknown_host_is_trusted_by_its_button_a_changed_key_never(page: Any, served: Served, sim_hosts: Any,
                                                                       shot: Any) -> None:
    a, b = sim_hosts.hosts
    known: Path = served.known_hosts
    forged = f"{b.address} {_key(a).export_public_key().decode().strip()}\n"  # b recorded with a's key
    known.write_text(forged)  # a: not recorded at all
    _set_hosts(page, sim_hosts, served)

    page.get_by_role("button", name="INSTALL", exact=True).click()
    trust = page.get_by_role("button", name=f"Trust {a.address}", exact=True)
    trust.wait_for(timeout=120_000)
    page.get_by_text(_key(a).get_fingerprint()).first.wait_for()
    assert page.get_by_text(re.compile(rf"{re.escape(a.address)} is not a known host")).count() >= 1
    refused = page.get_by_text(re.compile(
        rf"Host key changed: refused\. host {re.escape(b.address)}: host key changed \(it offers the ssh-ed25519 "
        rf"key {re.escape(_key(b).get_fingerprint())}, not the key recorded")).first
    refused.wait_for()
    assert page.get_by_role("button", name=f"Trust {b.address}").count() == 0
    assert trust.locator("svg.icon-tabler-shield-check").count() == 1  # the icon is inline, from the page's assets
    assert _columns(page)[:4] == ["host", "status", "ssh", "uv"]  # the steps of a remote host, in order
    for host in (a, b):
        assert _cell(_host_row(page, host.address), "ssh") == "failed"
    shot(page, "remote-00-trust-offered", trust)
    assert known.read_text() == forged  # looking records nothing

    trust.click()
    done = page.get_by_text(re.compile(rf"Recorded the ssh-ed25519 key .* of {re.escape(a.address)}")).first
    done.wait_for()
    shot(page, "remote-01-trusted", done)
    lines = known.read_text().splitlines()
    assert lines[0] == forged.strip() and len(lines) == 2  # the changed key of b stays as it was
    recorded = asyncssh.match_known_hosts(asyncssh.import_known_hosts(known.read_text()), a.address, a.address, 22)[0]
    assert {k.public_data for k in recorded} == {_key(a).public_data}
    assert page.get_by_role("button", name=f"Trust {a.address}").count() == 0


def _no_processes(sim: Any) -> list[str]:
    deadline = time.monotonic() + 60  # an SSH session's processes end shortly after it closes
    while True:
        left = [p for h in sim.hosts for p in h.processes()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_install_and_a_cluster_run_on_two_hosts(browser: Any, served: Served, sim_hosts: Any, shot: Any) -> None:
    served.known_hosts.write_bytes(sim_hosts.known_hosts.read_bytes())
    start = served.log_size()
    page = open_page(browser, served)
    try:
        addresses = _set_hosts(page, sim_hosts, served)
        cluster = page.get_by_role("switch", name="Enable cluster")
        if cluster.get_attribute("aria-checked") != "true":
            cluster.click()
        page.get_by_text(re.compile(r"Run mode 4: dask")).first.wait_for()
        trust_new = page.get_by_role("switch", name="Trust new SSH hosts on first use")  # named, off by default
        assert trust_new.get_attribute("aria-checked") == "false"

        page.get_by_role("button", name="INSTALL", exact=True).click()
        page.get_by_text("Ready.").first.wait_for(timeout=1_200_000)
        assert _columns(page) == ["host", "status", "ssh", "uv", "venv", "runtime", "app", "check", "detail"]
        for host in addresses:  # each host's own row, a cell per remote step, its command output tagged with it
            row = _host_row(page, host)
            assert _cell(row, "status") == "ok"
            assert _cell(row, "ssh").startswith("ok ")  # the checks run every time
            for step in ("uv", "venv", "runtime", "app", "check"):
                cell = _cell(row, step)
                assert re.match(r"^(ok [\d.]+s|cached)$", cell), (host, step, cell)
                if step in ("venv", "check") and cell.startswith("ok"):  # it ran commands there: they were shown
                    assert page.locator(".log .line", has_text=f"[{host}] {step}:").count() >= 1, (host, step)
        shot(page, "remote-02-installed", page.get_by_text("Status per host").first)

        run = page.get_by_role("button", name="RUN", exact=True)
        run.scroll_into_view_if_needed()
        run.click()
        page.get_by_text(re.compile(r"RUN done in [\d.,]+ s")).first.wait_for(timeout=600_000)
        page.get_by_text(re.compile(r"\b4( / 4)? partitions done")).first.wait_for()
        page.get_by_text(re.compile(r"\b2 workers\b")).first.wait_for()
        workers = set(page.evaluate(_PLOT_WORKERS))
        assert {f"{h}-0" for h in addresses} <= workers, workers  # the plot has a slot on each host
        assert not {w for w in workers if not w.startswith(tuple(addresses))}, workers  # and none elsewhere
        shot(page, "remote-03-run-done", page.get_by_text(re.compile(r"RUN done in")).first)
        # installed: the map's hosts are (each one's INSTALL recorded here), though this machine is not
        page.locator("li.done", has_text="Installed").wait_for(timeout=30_000)
        assert run.is_enabled()
        # the rows of Dask's "Mismatched versions found" tables the hosts' workers logged: at most the Python
        # (a host's own, when it is another release than the engine's: INSTALL says so), never a package
        rows = [t for t in page.locator(".log .line .x").all_inner_texts() if re.match(r"\| (?!Package )", t)]
        assert {r.split("|")[1].strip() for r in rows} <= {"python"}, rows
        assert_clean(page)
        served.assert_log_clean(start)
    finally:
        page.context.close()
    assert all(h.pids() for h in sim_hosts.hosts)  # the page keeps its cluster warm
    served.stop()  # the server ends: its remote workers end with it
    assert _no_processes(sim_hosts) == []
