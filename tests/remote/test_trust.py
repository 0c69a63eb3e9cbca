"""Trusting a new host on the user's word, against real sshd: the key shown is the host's own, the key
recorded is exactly that one, a changed key is never recorded, and known_hosts is replaced atomically."""
from __future__ import annotations

import os
from pathlib import Path

import asyncssh
import pytest

from agilab_panel.remote import RemoteHostError, SshOptions, check_host, host_key_offer, trust_host_key

from .simhosts import SimHost, SimHosts

pytestmark = pytest.mark.integration


def options(sim: SimHosts, known: Path) -> SshOptions:
    base = SshOptions.from_env(key_path=str(sim.client_key))
    return SshOptions(**{**base.__dict__, "known_hosts": known})


def folder(tmp_path: Path) -> Path:
    """A folder of this test's own (ssh_env writes its files beside tmp_path's root)."""
    path = tmp_path / "trust"
    path.mkdir()
    return path


def host_key(host: SimHost) -> asyncssh.SSHKey:
    return asyncssh.read_public_key(str(host.host_key.with_suffix(".pub")))


async def test_an_unknown_host_shows_its_own_key_and_trusting_records_exactly_it(ssh_env: SimHosts,
                                                                                   tmp_path: Path) -> None:
    a, b = ssh_env.hosts
    known = folder(tmp_path) / "known_hosts"
    other = f"{b.address} {b.host_key.with_suffix('.pub').read_text().strip()}"
    known.write_text("# kept as it is\n" + other)  # no final newline: the new line must not join it
    known.chmod(0o600)
    inode = known.stat().st_ino
    opts = options(ssh_env, known)

    offer = await host_key_offer(a.address, opts)
    assert (offer.status, offer.key_type) == ("unknown", "ssh-ed25519")
    assert offer.fingerprint == host_key(a).get_fingerprint()  # the host's own key, as ssh-keygen -l shows it
    with pytest.raises(RemoteHostError, match="host key unknown"):  # nothing recorded by looking
        await check_host(a.address, opts, str(ssh_env.share))

    trusted = await trust_host_key(a.address, offer.fingerprint, opts)
    assert trusted.status == "known"
    lines = known.read_text().splitlines()
    assert lines[:2] == ["# kept as it is", other]
    recorded = asyncssh.import_known_hosts(known.read_text())
    keys = asyncssh.match_known_hosts(recorded, a.address, a.address, 22)[0]
    assert {k.public_data for k in keys} == {host_key(a).public_data}  # (matched by name and by address)
    assert len(lines) == 3 and lines[2].split()[0] == a.address
    # replaced, not written in place: a new file (same mode) and no temporary file left beside it
    assert known.stat().st_ino != inode and (known.stat().st_mode & 0o777) == 0o600
    assert os.listdir(known.parent) == ["known_hosts"]
    await check_host(a.address, opts, str(ssh_env.share))  # now known: the checks pass
    assert (await host_key_offer(a.address, opts)).status == "known"
    before = known.read_bytes()
    await trust_host_key(a.address, offer.fingerprint, opts)  # trusting again records nothing twice
    assert known.read_bytes() == before


async def test_a_changed_key_is_refused_and_never_recorded(ssh_env: SimHosts, tmp_path: Path) -> None:
    a, b = ssh_env.hosts
    forged = folder(tmp_path) / "known_hosts"  # a's address recorded with b's key
    forged.write_text(f"{a.address} {b.host_key.with_suffix('.pub').read_text().strip()}\n")
    before, inode = forged.read_bytes(), forged.stat().st_ino
    opts = options(ssh_env, forged)
    offer = await host_key_offer(a.address, opts)
    assert offer.status == "changed" and offer.fingerprint == host_key(a).get_fingerprint()
    assert "host key changed" in offer.message and "refused" in offer.message
    with pytest.raises(RemoteHostError, match="host key changed") as err:
        await trust_host_key(a.address, offer.fingerprint, opts)
    assert err.value.kind == "host-key-changed"
    assert forged.read_bytes() == before and forged.stat().st_ino == inode


async def test_a_key_other_than_the_one_shown_is_not_recorded(ssh_env: SimHosts, tmp_path: Path) -> None:
    a, b = ssh_env.hosts
    known = folder(tmp_path) / "known_hosts"
    known.write_text("")
    shown = host_key(b).get_fingerprint()  # what the user accepted is not what a offers now
    with pytest.raises(RemoteHostError, match="not recorded") as err:
        await trust_host_key(a.address, shown, options(ssh_env, known))
    assert err.value.kind == "host-key-changed" and known.read_text() == ""


async def test_hostile_or_absent_hosts_record_nothing(ssh_env: SimHosts, tmp_path: Path) -> None:
    known = folder(tmp_path) / "known_hosts"
    known.write_text("")
    opts = SshOptions(**{**options(ssh_env, known).__dict__, "connect_timeout": 10})
    with pytest.raises(RemoteHostError) as err:
        await trust_host_key(f"{ssh_env.hosts[0].address}; touch {tmp_path / 'ran'}", "SHA256:x", opts)
    assert err.value.kind == "refused-input"
    with pytest.raises(RemoteHostError) as err:
        await host_key_offer(f"10.231.{ssh_env.subnet}.99", opts)  # on the subnet, nobody there
    assert err.value.kind == "unreachable"
    assert known.read_text() == "" and not (tmp_path / "ran").exists()
    assert os.listdir(known.parent) == ["known_hosts"]
