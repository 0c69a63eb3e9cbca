"""The simulated hosts themselves: separate addresses, separate sshd processes, users and homes."""
from __future__ import annotations

import socket

from .simhosts import SimHosts


def test_each_host_has_its_own_sshd_user_and_home(sim_hosts: SimHosts) -> None:
    a, b = sim_hosts.hosts
    assert len({a.address, b.address}) == 2 and len({a.user, b.user}) == 2 and a.uid != b.uid
    for host in (a, b):
        assert host.sshd is not None and host.sshd.poll() is None
        with socket.create_connection((host.address, 22), timeout=30) as sock:
            assert sock.recv(64).startswith(b"SSH-2.0-OpenSSH")
        assert (host.home / ".ssh" / "authorized_keys").stat().st_uid == host.uid
        assert host.run_as_user("sh", "-c", "echo $HOME").strip() == str(host.home)
    known = sim_hosts.known_hosts.read_text().splitlines()
    assert [line.split()[0] for line in known] == [a.address, b.address]
