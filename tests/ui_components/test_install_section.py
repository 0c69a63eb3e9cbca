"""Install: snippet, readiness messages, status per host from step events, live logs, a real INSTALL."""
from __future__ import annotations

import re

import asyncio

import pytest

from agilab_panel.events import StepEvent
from agilab_panel.install import install_steps
from agilab_panel.ui.install_section import InstallSection
from agilab_panel.ui.state import OrchestrateState

from .conftest import visible_text

REMOTE = "192.0.2.10"  # TEST-NET-1: documentation only, never reachable


async def _wait_idle(state: OrchestrateState, timeout: float = 120.0) -> None:
    await asyncio.sleep(0)
    for _ in range(int(timeout / 0.05)):
        if not state.busy:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{state.busy} still running")


def test_empty_state_and_snippet(minimal_state: OrchestrateState) -> None:
    section = InstallSection(minimal_state)
    text = visible_text(section)
    assert "Run INSTALL first" in text and "not installed" in text
    assert "AGI.install(" in section.snippet.source and "AGI.install(" in text
    assert "Install logs" in text and "No install logs yet" in text
    assert section.hosts.frame[["host", "status"]].values.tolist() == [["127.0.0.1", "pending"]]
    assert not section.install_button.disabled and section.cancel_button.disabled
    minimal_state.busy = "RUN"  # any running action blocks INSTALL
    assert section.install_button.disabled and section.cancel_button.disabled
    minimal_state.busy = ""
    minimal_state.settings.cluster.pool = True  # the snippet follows the toggles
    assert "AGI.POOL_MODE" in section.snippet.source


def test_previous_install_still_valid(minimal_state: OrchestrateState) -> None:
    minimal_state.installed = True  # what the state finds at load after a still-valid install
    section = InstallSection(minimal_state)
    assert "previous install is still valid" in section.status_text
    assert section.hosts.status("127.0.0.1") == "ready"


def test_step_events_fill_the_host_table(minimal_state: OrchestrateState) -> None:
    minimal_state.settings.cluster.workers = {"127.0.0.1": 1, "localhost": 1, REMOTE: 1}
    section = InstallSection(minimal_state)
    assert section.hosts.frame["status"].tolist() == ["pending"] * 3
    bus = minimal_state.bus
    bus.emit(StepEvent(host="127.0.0.1", step="venv", state="skipped"))
    bus.emit(StepEvent(host="127.0.0.1", step="runtime", state="started"))
    bus.emit(StepEvent(host=REMOTE, step="ssh", state="failed", detail="remote hosts need an SSH install"))
    section._feed.flush()
    table = section.hosts
    assert table.step("127.0.0.1", "venv") == "cached" and table.step("localhost", "runtime") == "running"
    assert table.status("localhost") == "running"  # local hosts share one environment
    assert table.status(REMOTE) == "failed" and "SSH" in table.frame.set_index("host").loc[REMOTE, "detail"]
    bus.emit(StepEvent(host="127.0.0.1", step="runtime", state="done", seconds=2.5))
    section._feed.flush()
    assert table.step("127.0.0.1", "runtime") == "ok 2.5s"
    # the steps INSTALL runs are laid out first, a remote host's checks (ssh) and uv before the others
    assert list(table.frame.columns) == ["host", "status", "ssh", "uv", "venv", "runtime", "app", "check", "detail"]


def test_install_events_only_fill_the_columns_laid_out_before_it(minimal_state: OrchestrateState) -> None:
    """The steps INSTALL will run are the table's columns before it starts; its events fill cells, in the
    one pane the page already shows."""
    section = InstallSection(minimal_state)
    steps = install_steps(minimal_state.env, minimal_state.settings.cluster.mode)
    pane = section.hosts.__panel__()
    assert section.hosts.columns == ["host", "status", *steps, "detail"]  # before any event
    headers: list[list[str]] = []
    pane.param.watch(lambda event: headers.append(re.findall(r"<th>(.*?)</th>", event.new)), "object")
    minimal_state.busy = "INSTALL"
    for step in steps:
        minimal_state.bus.emit(StepEvent(host="127.0.0.1", step=step, state="started"))
        section._feed.flush()
        minimal_state.bus.emit(StepEvent(host="127.0.0.1", step=step, state="done", seconds=0.5))
        section._feed.flush()
    minimal_state.busy = ""
    assert section.hosts.__panel__() is pane and len(headers) >= 2 * len(steps)
    assert all(columns == ["host", "status", *steps, "detail"] for columns in headers)
    assert f'<td data-field="{steps[-1]}" style="color: #2e7d32; font-weight: 600">ok 0.5s</td>' in pane.object
    minimal_state.settings.cluster.cython = True  # other toggles, other steps: the same pane, new columns
    assert section.hosts.__panel__() is pane and "<th>cython</th>" in pane.object


def test_the_host_table_escapes_what_it_shows(minimal_state: OrchestrateState) -> None:
    minimal_state.settings.cluster.workers = {REMOTE: 1}
    section = InstallSection(minimal_state)
    minimal_state.bus.emit(StepEvent(host=REMOTE, step="ssh", state="failed", detail="<script>alert(1)</script> & co"))
    section._feed.flush()
    shown = section.hosts.__panel__().object
    assert "<script>" not in shown and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in shown
    assert shown.count("<tr>") == 2  # the header and the one host


async def test_failed_install_names_the_host(minimal_state: OrchestrateState) -> None:
    minimal_state.settings.cluster.workers = {REMOTE: 1}
    section = InstallSection(minimal_state)
    await section._install()  # what the INSTALL button runs
    assert not minimal_state.installed
    assert section.hosts.status(REMOTE) == "failed"
    text = visible_text(section)
    assert f"host {REMOTE}" in text and "INSTALL failed" in text and "Not ready" in text
    section.logs.flush()
    assert any(line.level == "ERROR" and REMOTE in line.text for line in section.logs.lines)


@pytest.mark.integration
async def test_real_install_streams_logs_live(minimal_state: OrchestrateState) -> None:
    section = InstallSection(minimal_state)
    section.logs.period = 50
    section.start()  # periodic flushes on the running loop, as on a server session
    try:
        section.install_button.clicks += 1
        await asyncio.sleep(0.05)
        assert minimal_state.busy == "INSTALL" and section.install_button.disabled and not section.cancel_button.disabled
        seen_while_running = 0
        while minimal_state.busy:
            seen_while_running = max(seen_while_running, len(section.logs.lines))
            await asyncio.sleep(0.1)
        assert seen_while_running > 0  # lines arrived before INSTALL ended
        assert minimal_state.installed, minimal_state.error
        assert section.hosts.status("127.0.0.1") == "ok"
        assert section.hosts.step("127.0.0.1", "venv").startswith("ok")
        assert "Ready." in section.status_text and "Run is enabled" in section.status_text
        assert any("$ " in line.text for line in section.logs.lines)
    finally:
        section.close()
