"""Two simulated remote hosts with real OpenSSH servers, made once per session (see ``simhosts``).

Where they cannot be made (not root, no ``ip`` or sshd), every test here is skipped with the reason.
``ssh_env`` points a test's SSH settings at the hosts: the client key, the generated known_hosts and an
SSH config that gives each address its own user (each host has its own account).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .simhosts import SimHosts, unavailable


@pytest.fixture(scope="session")
def sim_hosts() -> Iterator[SimHosts]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    hosts = SimHosts(2)
    try:
        hosts.start()
        for host in hosts.hosts:  # the machine's Python must be usable by the host's own user
            version = host.run_as_user("/usr/bin/python3", "-c", "import sys; print(sys.version_info >= (3, 11))")
            if version.strip() != "True":
                pytest.skip(f"the Python of host {host.address} is older than 3.11")
        yield hosts
    finally:
        hosts.close()


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
