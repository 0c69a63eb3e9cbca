"""Host checks against real sshd: each failure is one clear error naming the host."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agilab_panel.events import EventBus
from agilab_panel.remote import RemoteHostError, SshOptions, check_host, check_hosts

from .simhosts import SimHosts

pytestmark = pytest.mark.integration


def options(sim: SimHosts, **kw) -> SshOptions:
    base = SshOptions.from_env(key_path=str(sim.client_key))
    return SshOptions(**{**base.__dict__, **kw})


async def test_both_hosts_pass_and_report_their_python(ssh_env: SimHosts) -> None:
    found = await check_hosts([h.address for h in ssh_env.hosts], options(ssh_env), str(ssh_env.share))
    for host in ssh_env.hosts:
        facts = found[host.address]
        assert not isinstance(facts, RemoteHostError), facts
        assert facts.user == host.user and facts.home == str(host.home)
        assert tuple(map(int, facts.python_version.split("."))) >= (3, 11)


async def test_unreachable_host(ssh_env: SimHosts) -> None:
    ghost = f"10.231.{ssh_env.subnet}.99"  # on the subnet, nobody there
    with pytest.raises(RemoteHostError, match=f"host {ghost}: unreachable") as err:
        await check_host(ghost, options(ssh_env, connect_timeout=10), str(ssh_env.share))
    assert err.value.kind == "unreachable"


async def test_wrong_key_is_refused(ssh_env: SimHosts) -> None:
    host = ssh_env.hosts[0].address
    with pytest.raises(RemoteHostError, match="authentication refused") as err:
        await check_host(host, options(ssh_env, key_path=str(ssh_env.wrong_key)), str(ssh_env.share))
    assert err.value.kind == "auth-refused" and err.value.host == host


async def test_unknown_host_key_is_refused_by_default(ssh_env: SimHosts, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(RemoteHostError, match="host key unknown") as err:
        await check_host(ssh_env.hosts[0].address, options(ssh_env, known_hosts=empty), str(ssh_env.share))
    assert err.value.kind == "host-key-unknown" and empty.read_text() == ""


async def test_trust_on_first_use_records_the_key_and_says_so(ssh_env: SimHosts, tmp_path: Path) -> None:
    known = tmp_path / "tofu_known_hosts"
    host = ssh_env.hosts[1]
    bus = EventBus()
    await check_host(host.address, options(ssh_env, known_hosts=known, trust_new_hosts=True), str(ssh_env.share), bus)
    assert known.read_text().split()[:3] == [host.address, *host.host_key.with_suffix(".pub").read_text().split()[:2]]
    assert any(line.level == "WARNING" and "trusted the new host key" in line.text for line in bus.logs())
    await check_host(host.address, options(ssh_env, known_hosts=known), str(ssh_env.share))  # now known


async def test_changed_host_key_is_always_refused(ssh_env: SimHosts, tmp_path: Path) -> None:
    a, b = ssh_env.hosts
    forged = tmp_path / "forged_known_hosts"  # a's address recorded with b's key
    forged.write_text(f"{a.address} {b.host_key.with_suffix('.pub').read_text().strip()}\n")
    for trust in (False, True):
        with pytest.raises(RemoteHostError, match="host key changed") as err:
            await check_host(a.address, options(ssh_env, known_hosts=forged, trust_new_hosts=trust), str(ssh_env.share))
        assert err.value.kind == "host-key-changed"
    assert forged.read_text().count("\n") == 1


@pytest.fixture
def no_python_on_path(ssh_env: SimHosts) -> Iterator[SimHosts]:
    """Host 0's login shell runs with a PATH that has no Python (as on a host without one)."""
    host = ssh_env.hosts[0]
    shell = ssh_env.workdir / "shell-without-python"
    shell.write_text('#!/bin/sh\nPATH=/nonexistent\nexport PATH\nexec /bin/bash "$@"\n')
    shell.chmod(0o755)
    os.system(f"usermod -s {shell} {host.user}")  # noqa: S605 - fixed names made by the fixture
    yield ssh_env
    os.system(f"usermod -s /bin/bash {host.user}")  # noqa: S605


async def test_host_without_python(no_python_on_path: SimHosts) -> None:
    host = no_python_on_path.hosts[0].address
    with pytest.raises(RemoteHostError, match="no Python >= 3.11") as err:
        await check_host(host, options(no_python_on_path), str(no_python_on_path.share))
    assert err.value.kind == "no-python"


async def test_share_missing_or_not_writable(ssh_env: SimHosts) -> None:
    host = ssh_env.hosts[1].address
    locked = ssh_env.workdir / "locked-share"  # root's, 0755: the host user may not write
    locked.mkdir(mode=0o755, exist_ok=True)
    for share, why in ((locked, "is not writable"), (ssh_env.workdir / "no-such-share", "does not exist")):
        with pytest.raises(RemoteHostError, match=why) as err:
            await check_host(host, options(ssh_env), str(share))
        assert err.value.kind == "share-not-writable"
    assert list(locked.iterdir()) == []


async def test_share_with_spaces_is_quoted_not_split(ssh_env: SimHosts) -> None:
    spaced = ssh_env.share / "a share with spaces"
    spaced.mkdir(exist_ok=True)
    spaced.chmod(0o1777)
    facts = await check_host(ssh_env.hosts[0].address, options(ssh_env), str(spaced))
    assert facts.share == str(spaced)


def _logins(sim: SimHosts) -> int:
    return sum((sim.workdir / f"host{h.index}" / "sshd.log").read_text(errors="replace").count("Accepted publickey")
               for h in sim.hosts)


@pytest.mark.parametrize("field", ["host", "user", "share"])
async def test_hostile_names_run_nothing(ssh_env: SimHosts, tmp_path: Path, field: str) -> None:
    marker = tmp_path / "ran"
    payload = f"; touch {marker} #"
    host, share, opts = ssh_env.hosts[0].address, str(ssh_env.share), options(ssh_env)
    if field == "host":
        host = host + payload
    elif field == "user":
        opts = options(ssh_env, user="x" + payload)
    else:
        share = f"{share}/$(touch {marker})"
    before = _logins(ssh_env)
    with pytest.raises(RemoteHostError, match="refused") as err:
        await check_host(host, opts, share)
    assert err.value.kind == "refused-input"
    assert not marker.exists() and _logins(ssh_env) == before
