"""Simulated remote hosts: network namespaces on a private bridge, each with its own sshd, user and home.

Each host is a network namespace with its own address on a private /24 (this machine's side of the
bridge is the gateway), running its own OpenSSH server (own host key, port 22 on its address, one
allowed user created here with its own home and ``~/.ssh/authorized_keys``). The client keys and the
known_hosts file are generated here. Namespaces share the filesystem and the process table with this
machine: the tests treat each home as a remote path and read a host's processes by its user's uid.

Everything made here is undone by :meth:`SimHosts.close` (sshd and every process of the host users
ended by pid, namespaces, bridge, users and homes removed).
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from .proxy import ConnectProxy

__all__ = ["SimHost", "SimHosts", "listening", "unavailable"]

SSHD = "/usr/sbin/sshd"
PYTHON = "/usr/bin/python3"


def unavailable() -> str | None:
    """Why simulated hosts cannot be made here (one line), or None when they can."""
    if os.geteuid() != 0:
        return "simulated SSH hosts need root (network namespaces, sshd, useradd)"
    for tool in ("ip", "ssh-keygen", "useradd", "userdel"):
        if not shutil.which(tool):
            return f"simulated SSH hosts need {tool!r} on PATH"
    if not os.access(SSHD, os.X_OK):
        return f"simulated SSH hosts need the OpenSSH server ({SSHD}); ./dev test installs it"
    if not os.access(PYTHON, os.X_OK):
        return f"simulated SSH hosts need the machine's Python at {PYTHON}"
    return None


def _address(hexed: str) -> str:
    """An address of /proc/<pid>/net/tcp{,6}: hex, in 32-bit words of host byte order."""
    raw = bytes.fromhex(hexed)
    native = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # little-endian words (x86, arm)
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, native)


def listening(pids: set[int]) -> set[str]:
    """Addresses the processes listen on (TCP), read in each process's own network namespace:
    ``/proc/<pid>/net/tcp`` is that namespace's table (psutil reads this machine's only)."""
    found = set()
    for pid in pids:
        try:
            inodes = set()
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:  # closed since the listing
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
            for table in ("tcp", "tcp6"):
                with open(f"/proc/{pid}/net/{table}") as f:
                    for line in f.readlines()[1:]:
                        fields = line.split()
                        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                            found.add(_address(fields[1].split(":")[0]))
        except OSError:  # the process ended meanwhile
            pass
    return found


def _run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _free_subnet() -> int:
    """A third octet N such that 10.231.N.0/24 is used by no interface here (other test sessions included)."""
    used = _run("ip", "-4", "-o", "addr")
    for n in range(256):
        if f" 10.231.{n}." not in used:
            return n
    raise RuntimeError("no free 10.231.N.0/24 subnet for simulated hosts")


@dataclass
class SimHost:
    """One simulated host: its namespace, address, sshd and user."""

    index: int
    netns: str
    address: str
    user: str
    home: Path
    uid: int = -1
    host_key: Path = Path()
    sshd: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)  # this host's own environment (its sshd's SetEnv)

    def pids(self) -> set[int]:
        """Processes of this host's user: its side of the process table (sshd's own root part excluded)."""
        found = set()
        for proc in psutil.process_iter(["uids", "status"]):
            try:
                if proc.info["uids"].real == self.uid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    found.add(proc.pid)
            except (psutil.NoSuchProcess, AttributeError):
                pass
        return found

    def processes(self) -> list[str]:
        """Command lines of this host user's processes (for assertion messages)."""
        lines = []
        for pid in self.pids():
            try:
                lines.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())}")
            except psutil.NoSuchProcess:
                pass
        return lines

    def run_as_user(self, *cmd: str) -> str:
        """Run ``cmd`` as the host's user inside its namespace (setup checks, not the code under test)."""
        return _run("ip", "netns", "exec", self.netns, "runuser", "-u", self.user, "--", *cmd)


@dataclass
class SimHosts:
    """``count`` simulated hosts sharing one client key pair and one known_hosts file."""

    count: int = 2
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="simhosts-")))
    hosts: list[SimHost] = field(default_factory=list)
    proxy: ConnectProxy | None = None

    def __post_init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.tag = tag
        self.bridge = f"agbr{tag}"
        self.subnet = _free_subnet()
        self.gateway = f"10.231.{self.subnet}.1"
        self.client_key = self.workdir / "id_ed25519"
        self.wrong_key = self.workdir / "id_wrong"
        self.known_hosts = self.workdir / "known_hosts"
        self.share = self.workdir / "share"  # world-writable, sticky: a folder every host can write
        for i in range(self.count):
            self.hosts.append(SimHost(i, f"agns{tag}h{i}", f"10.231.{self.subnet}.{10 + i}", f"agi{tag}h{i}",
                                      Path(f"/home/agi{tag}h{i}")))

    # -- setup ---------------------------------------------------------------------------------
    def start(self) -> SimHosts:
        self.workdir.chmod(0o755)
        self.share.mkdir()
        self.share.chmod(0o1777)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "agilab-tests", "-f", str(self.client_key))
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "not-authorized", "-f", str(self.wrong_key))
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        self.proxy = ConnectProxy(self.gateway)
        for host in self.hosts:
            self._network(host)
            self._user(host)
            self._sshd(host)
        self.known_hosts.write_text("".join(f"{h.address} {self._pub(h.host_key).strip()}\n" for h in self.hosts))
        for host in self.hosts:
            self._wait_port(host)
        return self

    def _network(self, host: SimHost) -> None:
        veth, peer = f"agv{self.tag}h{host.index}", f"agp{self.tag}h{host.index}"
        _run("ip", "netns", "add", host.netns)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
        _run("ip", "link", "set", peer, "netns", host.netns)
        _run("ip", "link", "set", veth, "master", self.bridge)
        _run("ip", "link", "set", veth, "up")
        inside = ("ip", "netns", "exec", host.netns)
        _run(*inside, "ip", "addr", "add", f"{host.address}/24", "dev", peer)
        _run(*inside, "ip", "link", "set", peer, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "route", "add", "default", "via", self.gateway)

    def _user(self, host: SimHost) -> None:
        # '*' (no password, not locked): sshd without PAM refuses even key logins to a locked ('!') account.
        _run("useradd", "-m", "-d", str(host.home), "-s", "/bin/bash", "-p", "*", host.user)
        host.uid = pwd.getpwnam(host.user).pw_uid
        ssh_dir = host.home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        keys = ssh_dir / "authorized_keys"
        keys.write_text(self._pub(self.client_key.with_suffix(".pub")))
        keys.chmod(0o600)
        for path in (ssh_dir, keys):
            os.chown(path, host.uid, host.uid)

    def _sshd(self, host: SimHost) -> None:
        folder = self.workdir / f"host{host.index}"
        folder.mkdir()
        host.host_key = folder / "ssh_host_ed25519_key"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host.host_key))
        self._sshd_config(host)
        self._sshd_start(host)

    def _sshd_config(self, host: SimHost) -> None:
        folder = self.workdir / f"host{host.index}"
        (folder / "sshd_config").write_text("\n".join([
            f"ListenAddress {host.address}:22", f"HostKey {host.host_key}", f"PidFile {folder / 'sshd.pid'}",
            "AuthorizedKeysFile .ssh/authorized_keys", "PubkeyAuthentication yes", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin no", "UsePAM no", f"AllowUsers {host.user}",
            "Subsystem sftp internal-sftp", "MaxStartups 50", "MaxSessions 50", "LogLevel VERBOSE",
            f"SetEnv {' '.join(self._host_env() + [f'{k}={v}' for k, v in host.env.items()])}", "",
        ]))

    def _sshd_start(self, host: SimHost) -> None:
        folder = self.workdir / f"host{host.index}"
        log = open(folder / "sshd.log", "ab")  # noqa: SIM115 - sshd writes it for its whole life
        host.sshd = subprocess.Popen(["ip", "netns", "exec", host.netns, SSHD, "-D", "-e", "-f", str(folder / "sshd_config")],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()

    def _host_env(self) -> list[str]:
        """The hosts' network settings: this site's way out (the proxy) and its CA certificates (a site
        whose TLS is inspected has its own CA, which the hosts of the site trust as this machine does)."""
        found = [f"HTTPS_PROXY={self.proxy.url}"] if self.proxy else []
        return found + [f"{name}={os.environ[name]}" for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")
                        if os.environ.get(name) and " " not in os.environ[name]]

    @staticmethod
    def _pub(path: Path) -> str:
        return path.with_suffix(".pub").read_text() if path.suffix != ".pub" else path.read_text()

    def _wait_port(self, host: SimHost) -> None:
        for _ in range(600):
            if host.sshd and host.sshd.poll() is not None:
                log = (self.workdir / f"host{host.index}" / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"sshd of {host.address} exited: {log.strip()[-500:]}")
            try:
                with socket.create_connection((host.address, 22), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd of {host.address} does not accept connections")

    # -- used by tests -------------------------------------------------------------------------
    def crash(self, host: SimHost) -> None:
        """The host goes down: its sshd and every process of its user are killed (their connections reset)."""
        self._kill(host)

    def restart_sshd(self, host: SimHost) -> None:
        """The host is back: its sshd runs again."""
        self._sshd_start(host)
        self._wait_port(host)

    def set_env(self, host: SimHost, **env: str) -> None:
        """Give ``host`` its own environment for every later command there (``set_env(h)`` puts the
        usual one back): its sshd is restarted, so every process of its user ends first."""
        if any(" " in v or '"' in v for v in env.values()):
            raise ValueError("a simulated host's environment values hold no spaces or quotes")
        host.env = dict(env)
        self._kill(host)
        self._sshd_config(host)
        self.restart_sshd(host)

    def _kill(self, host: SimHost) -> None:
        if host.sshd and host.sshd.poll() is None:
            host.sshd.terminate()
            try:
                host.sshd.wait(10)
            except subprocess.TimeoutExpired:
                host.sshd.kill()
                host.sshd.wait()
        for _ in range(50):
            pids = host.pids() if host.uid >= 0 else set()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    # -- teardown ------------------------------------------------------------------------------
    def close(self) -> None:
        for host in self.hosts:
            self._kill(host)
        if self.proxy:
            self.proxy.close()
        for host in self.hosts:
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)
            subprocess.run(["userdel", "-r", "-f", host.user], capture_output=True)
            shutil.rmtree(host.home, ignore_errors=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
