"""The sidebar's "Installed" tick and RUN follow the worker map in use: a map of remote hosts only is
installed when each host's last INSTALL is recorded complete, whatever this machine's environment."""
from __future__ import annotations

from agilab_panel.remote.status import RECORD_FILE
from agilab_panel.ui.page import OrchestratePage
from agilab_panel.ui.state import OrchestrateState

from remote.test_status import A, B, record


def test_the_installed_tick_follows_each_remote_hosts_record(minimal_state: OrchestrateState) -> None:
    state = minimal_state
    page = OrchestratePage(state)
    record(state.env, A)
    record(state.env, B)
    state.settings.cluster.param.update(workers={A: 1, B: 1}, cluster_enabled=True)
    assert state.installed and state.install_note == ""
    assert '<li class="done"><span class="mark">✓</span>Installed</li>' in page._checklist.object
    (state.env.wenv_path(B) / RECORD_FILE).unlink()  # another INSTALL of B, say, was interrupted
    assert "install" in state.refresh_from_disk()
    assert not state.installed and state.install_note == f"app 'minimal_app' on host {B} is not installed: run INSTALL"
    assert '<li class="todo"><span class="mark">○</span>Installed</li>' in page._checklist.object
    state.settings.cluster.workers = {A: 2}  # B is no longer in the map
    assert state.installed


def test_benchmarking_all_modes_needs_this_machine_too(minimal_state: OrchestrateState) -> None:
    state = minimal_state
    record(state.env, A)
    state.settings.cluster.param.update(workers={A: 1}, cluster_enabled=True)
    assert state.installed
    state.benchmark_all = True  # mode 0 runs on this machine, which has no worker environment here
    assert not state.installed and "on host localhost is not installed" in state.install_note
    state.benchmark_all = False
    assert state.installed
