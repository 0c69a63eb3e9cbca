"""SSH settings of a test against the two simulated hosts (``sim_hosts``, made once per session by the
tests' root conftest; see ``simhosts``). ``ssh_env`` points a test's SSH settings at the hosts: the
client key, the generated known_hosts and an SSH config that gives each address its own user (each
host has its own account).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from .simhosts import SimHosts


@pytest.fixture
def ssh_env(sim_hosts: SimHosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimHosts:
    """SSH settings of this test: known_hosts and a per-host user from an SSH config (key path given to
    the options by each test, as the settings would)."""
    known = tmp_path / "known_hosts"
    known.write_bytes(sim_hosts.known_hosts.read_bytes())
    config = tmp_path / "ssh_config"
    config.write_text("".join(f"Host {h.address}\n  User {h.user}\n" for h in sim_hosts.hosts))
    monkeypatch.setenv("AGILAB_SSH_KNOWN_HOSTS", str(known))
    monkeypatch.setenv("AGILAB_SSH_CONFIG", str(config))
    monkeypatch.setenv("AGI_CLUSTER_SHARE", str(sim_hosts.share))
    sim_hosts.test_known_hosts = known  # type: ignore[attr-defined]
    return sim_hosts
