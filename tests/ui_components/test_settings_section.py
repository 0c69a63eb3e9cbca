"""System settings: each valid change is saved at once; invalid input is refused at its field."""
from __future__ import annotations

import tomllib

import pytest

from agilab_panel.ui.settings_section import SystemSettingsSection
from agilab_panel.ui.state import OrchestrateState

from .conftest import visible_text


def _cluster_file(state: OrchestrateState) -> dict:
    return tomllib.loads(state.env.settings_path.read_text(encoding="utf-8"))["cluster"]


def test_toggles_are_saved_and_the_mode_hint_follows(minimal_state: OrchestrateState) -> None:
    section = SystemSettingsSection(minimal_state)
    assert "System settings" in visible_text(section)
    assert "Run mode 0: python" in section.mode_hint.object
    section.widgets["pool"].value = True
    section.widgets["cluster_enabled"].value = True
    cluster = minimal_state.settings.cluster
    assert cluster.pool and cluster.cluster_enabled and cluster.mode == 5
    saved = _cluster_file(minimal_state)
    assert saved["pool"] is True and saved["cluster_enabled"] is True
    assert "5: dask and pool" in section.mode_hint.object and "AGI.POOL_MODE | AGI.DASK_MODE" in section.mode_hint.object
    section.widgets["verbose"].value = 3
    section.widgets["user"].value = "analyst"
    section.widgets["workers_data_path"].value = "data/workers"
    saved = _cluster_file(minimal_state)
    assert (saved["verbose"], saved["user"], saved["workers_data_path"]) == (3, "analyst", "data/workers")
    assert "Saved" in visible_text(section)


def test_worker_map_valid(minimal_state: OrchestrateState) -> None:
    section = SystemSettingsSection(minimal_state)
    section.widgets["workers"].value = '{"127.0.0.1": 1, "node-b.example": 3, "::1": 2}'
    assert minimal_state.settings.cluster.workers == {"127.0.0.1": 1, "node-b.example": 3, "::1": 2}
    assert _cluster_file(minimal_state)["workers"] == {"127.0.0.1": 1, "node-b.example": 3, "::1": 2}
    assert "6 worker slots" in visible_text(section) and "3 hosts" in visible_text(section)


@pytest.mark.parametrize(("text", "expected"), [
    ('{"127.0.0.1": 2', "not JSON"),
    ('[["127.0.0.1", 2]]', "JSON object"),
    ('{"127.0.0.1": 0}', "positive int"),
    ('{"127.0.0.1": -2}', "positive int"),
    ('{"127.0.0.1": 1.5}', "positive int"),
    ('{"bad host!": 1}', "not an IPv4/IPv6 address or a DNS name"),
    ("{}", "at least one host"),
])
def test_worker_map_invalid_is_not_saved(minimal_state: OrchestrateState, text: str, expected: str) -> None:
    section = SystemSettingsSection(minimal_state)
    before = minimal_state.env.settings_path.read_bytes() if minimal_state.env.settings_path.exists() else None
    section.widgets["workers"].value = text
    assert minimal_state.settings.cluster.workers == {"127.0.0.1": 2}  # the last good value stays
    if before is not None:
        assert minimal_state.env.settings_path.read_bytes() == before
    assert _cluster_file(minimal_state)["workers"] == {"127.0.0.1": 2}
    message = section.messages["workers"]
    assert message.is_error and expected in message.text and "Not saved" in message.text
    assert message.text in visible_text(section)  # shown right under the field
    assert "invalid" in section.widgets["workers"].css_classes
    section.widgets["workers"].value = '{"127.0.0.1": 4}'  # a good value clears the error and is saved
    assert not message.text and "invalid" not in section.widgets["workers"].css_classes
    assert _cluster_file(minimal_state)["workers"] == {"127.0.0.1": 4}


@pytest.mark.parametrize("text", ["sched:99999", "bad host:8786", "10.0.0.1:", "[::1"])
def test_scheduler_invalid_is_not_saved(minimal_state: OrchestrateState, text: str) -> None:
    section = SystemSettingsSection(minimal_state)
    section.widgets["scheduler"].value = text
    assert minimal_state.settings.cluster.scheduler == ""
    assert _cluster_file(minimal_state)["scheduler"] == ""
    assert section.messages["scheduler"].is_error
    assert "Not saved" in visible_text(section)


def test_scheduler_valid_is_saved_and_reloads_show(minimal_state: OrchestrateState) -> None:
    section = SystemSettingsSection(minimal_state)
    section.widgets["scheduler"].value = " [::1]:8786 "
    assert _cluster_file(minimal_state)["scheduler"] == "[::1]:8786"
    assert not section.messages["scheduler"].text
    minimal_state.settings.cluster.workers = {"10.1.2.3": 1}  # set elsewhere: the text field follows
    assert section.widgets["workers"].value == '{"10.1.2.3": 1}'
    assert _cluster_file(minimal_state)["workers"] == {"10.1.2.3": 1}


def test_broken_file_offers_reseed() -> None:
    state = OrchestrateState("minimal_app")
    path = state.env.settings_path
    path.write_text("[cluster]\npool = true\nworkers = {\n", encoding="utf-8")
    state._load_app()
    assert state.settings is None and state.settings_error
    section = SystemSettingsSection(state)
    text = visible_text(section)
    assert "could not be read" in text and "app_settings.toml:" in text  # file and line
    assert "Reseed settings (keeps a backup)" in text
    section.widgets["reseed"].clicks += 1
    assert state.settings is not None and not state.settings_error
    backups = list(path.parent.glob("app_settings.toml.broken-*"))
    assert len(backups) == 1 and "workers = {" in backups[0].read_text(encoding="utf-8")
    assert "Reseed" not in visible_text(section) and "Worker map" in visible_text(section)
    assert backups[0].name in visible_text(section)
    section.widgets["pool"].value = True  # the rebuilt form saves again
    assert _cluster_file(state)["pool"] is True


def test_follows_app_changes_until_closed(minimal_state: OrchestrateState) -> None:
    section = SystemSettingsSection(minimal_state)
    pool = section.widgets["pool"]
    minimal_state.app = "flight_telemetry"  # another app: the section binds to its settings
    assert section.widgets["pool"] is pool  # the same widgets (the page is not rebuilt)
    pool.value = True
    assert _cluster_file(minimal_state)["pool"] is True and minimal_state.env.app == "flight_telemetry"
    minimal_state.app = "minimal_app"  # back: the same widgets show this app's own values
    assert section.widgets["pool"] is pool and pool.value is False and minimal_state.settings.cluster.pool is False
    minimal_state.app = "flight_telemetry"
    assert pool.value is True and "pool" in minimal_state.settings.cluster.param
    section.close()
    minimal_state.app = "minimal_app"
    assert pool.value is True  # a closed section no longer follows the state ...
    pool.value = False
    assert _cluster_file(minimal_state).get("pool") is not True and minimal_state.settings.cluster.pool is False
    minimal_state.app = "flight_telemetry"
    assert minimal_state.settings.cluster.pool is True  # ... nor writes to the settings


def test_trusting_new_ssh_hosts_is_a_visible_switch_off_by_default_saved_alone(minimal_state: OrchestrateState) -> None:
    section = SystemSettingsSection(minimal_state)
    switch = section.widgets["ssh_trust_new_hosts"]
    assert switch.label == "Trust new SSH hosts on first use" and switch.value is False
    assert "records in known_hosts the key of a remote host never seen before, on first use" in visible_text(section)
    cluster = minimal_state.settings.cluster
    path = minimal_state.env.settings_path
    before_file = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    before_model = {k: v for k, v in cluster.param.values().items() if k != "ssh_trust_new_hosts"}
    switch.value = True
    assert cluster.ssh_trust_new_hosts is True
    after_file = tomllib.loads(path.read_text(encoding="utf-8"))
    assert after_file["cluster"].pop("ssh_trust_new_hosts") is True
    before_file.get("cluster", {}).pop("ssh_trust_new_hosts", None)
    assert after_file == before_file  # nothing else in the file changed
    assert {k: v for k, v in cluster.param.values().items() if k != "ssh_trust_new_hosts"} == before_model
    assert "Saved ssh_trust_new_hosts to app_settings.toml." in visible_text(section)
    switch.value = False
    assert _cluster_file(minimal_state)["ssh_trust_new_hosts"] is False
