"""Dask clusters run from the worker environment: started once, kept warm, or found again.

A :class:`WorkerCluster` is one scheduler plus one single-threaded worker process per slot, named
after the slot (``host-i``) so the plan can pin partitions to them. Process output goes to log files
that are followed live. :class:`ClusterPool` keeps clusters warm per app and worker map, and finds a
cluster kept by an earlier process through its state file.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from ..env import AgiEnv
from ..events import EventBus, LogLine, WorkerEvent
from ..hosts import is_local_host, is_loopback, is_wildcard, parse_host_port, slot_ids
from ..runtime.lifecycle import die_with_parent
from . import rundirs
from .common import MAX_LINE, child_env, take_pieces
from .result import RunError

__all__ = ["WorkerCluster", "ClusterPool", "cluster_security", "cluster_pool", "scheduler_reachable", "stop_kept_cluster",
           "EXPOSE_SCHEDULER_ENV", "dask_process_env"]

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0
# The explicit opt-in for a scheduler of ours listening beyond loopback (set to 1).
EXPOSE_SCHEDULER_ENV = "AGILAB_SCHEDULER_EXPOSED"
# Every HTTP page a local cluster serves (scheduler and worker info, logs, call stacks) stays on loopback.
_HTTP_LOOPBACK = "127.0.0.1:0"


def scheduler_reachable(address: str, timeout: float = 0.5) -> bool:
    host, port = parse_host_port(address, 8786)
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout):
            return True
    except OSError:
        return False


def dask_process_env(cython_path: str | None) -> dict[str, str]:
    """The environment of a cluster's scheduler and workers (a worker started again gets the same)."""
    env = child_env([cython_path] if cython_path else None)
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "0"
    env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    return env


def _route_address(host: str) -> str:
    """This machine's address on the route to ``host``: where a scheduler for its workers listens."""
    bare = host.strip("[]")
    try:
        family = socket.getaddrinfo(bare, 22, proto=socket.IPPROTO_TCP)[0][0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((bare, 22))  # no packet is sent: only the route is looked up
            return probe.getsockname()[0]
    except OSError as exc:
        raise RunError(f"host {host}: no route from this machine ({exc.strerror or exc})", worker=f"{host}-0") from None


def scheduler_interface(remote: list[str]) -> tuple[str, str | None]:
    """The one address of this machine a scheduler for ``remote`` hosts listens on (never every
    interface): the source address of the route to them; local workers beside them reach it too (it
    is this machine's). With a warning when hosts are reached through different interfaces of this
    machine: then only routing between them lets the others reach the first one's."""
    routes = {host: _route_address(host) for host in remote}
    chosen = routes[remote[0]]
    others = {host: addr for host, addr in routes.items() if addr != chosen}
    if not others:
        return chosen, None
    seen = ", ".join(f"{host} via {addr}" for host, addr in others.items())
    return chosen, (f"the scheduler listens on {chosen} (the route to {remote[0]}), but {seen}: those hosts' "
                    "workers reach it only if their network routes to it; otherwise they do not join")


def _dask_settings() -> dict[str, str]:
    """The Dask settings every cluster process gets, for the processes started on other hosts."""
    return {k: v for k, v in dask_process_env(None).items() if k.startswith("DASK_DISTRIBUTED__")}


def _quiet_distributed(verbose: int) -> None:
    """The in-process scheduler logs like a library, not on the user's terminal, unless verbose >= 3."""
    if verbose < 3:
        for name in ("distributed.scheduler", "distributed.core", "distributed.http.proxy", "distributed.comm"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _level(text: str) -> str:
    """Dask's own INFO chatter is DEBUG here (shown at verbose 3); the app's prints stay INFO."""
    if " - ERROR - " in text or " - CRITICAL - " in text or text.startswith("Traceback"):
        return "ERROR"
    if " - WARNING - " in text:
        return "WARNING"
    if " - distributed." in text or " - dask." in text:
        return "DEBUG"
    return "INFO"


class _Tail:
    """Follow a log file and emit its new lines."""

    def __init__(self, path: Path, source: str, host: str) -> None:
        self.path, self.source, self.host = path, source, host
        self.offset = 0
        self.partial = b""

    def poll(self, bus: EventBus | None) -> None:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        if not chunk:
            return
        self.offset += len(chunk)
        *lines, rest = (self.partial + chunk).split(b"\n")
        partial = bytearray(rest)
        lines += take_pieces(partial, MAX_LINE)  # a line that does not end comes in pieces: memory stays bounded
        self.partial = bytes(partial)
        if bus is None:
            return
        for raw in lines:
            text = raw.decode(errors="replace")
            level = _level(text)
            bus.emit(LogLine(text=text, source=self.source, stream="stderr", level=level, host=self.host))


def cluster_security(cluster: Any) -> Any:
    """Dask TLS for a cluster with remote hosts: the certificate files ``[cluster]`` names, else
    temporary ones made for this cluster (a CA and certificate in memory, gone with it)."""
    from distributed.security import Security

    names = {"ca": "tls_ca_file", "cert": "tls_cert_file", "key": "tls_key_file"}
    paths = {role: str(getattr(cluster, key, "") or "") for role, key in names.items()}
    if not any(paths.values()):
        return Security.temporary()
    if not all(paths.values()):
        missing = ", ".join(names[r] for r, p in paths.items() if not p)
        raise RunError(f"[cluster] tls_ca_file, tls_cert_file and tls_key_file go together: {missing} is empty")
    texts = {}
    for role, path in paths.items():
        try:
            texts[role] = Path(path).expanduser().read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise RunError(f"[cluster] {names[role]} {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
        if "-----BEGIN" not in texts[role]:
            raise RunError(f"[cluster] {names[role]} {path} is not a PEM file")
    return Security(require_encryption=True, tls_ca_file=texts["ca"],
                    **{f"tls_{role}_{kind}": texts[kind] for role in ("client", "scheduler", "worker")
                       for kind in ("cert", "key")})


class WorkerCluster:
    """A scheduler and named single-threaded workers, or a connection to someone else's scheduler."""

    def __init__(self, env: AgiEnv, python: Path, workers: Mapping[str, int], *, scheduler: str | None = None,
                 cython_path: Path | None = None, persistent: bool = False) -> None:
        self.env, self.python, self.workers = env, python, dict(workers)
        self.requested_scheduler = scheduler
        self.cython_path = cython_path
        self.persistent = persistent
        self.address: str | None = None
        self._listen: tuple[str, int] = ("127.0.0.1", 0)  # where a scheduler of ours listens
        self.external = False
        self.procs: dict[str, subprocess.Popen] = {}
        self.scheduler: Any = None  # an in-process scheduler, when this cluster is not kept across processes
        self.client: Any = None
        self.bus: EventBus | None = None
        self.slot_workers: dict[str, str] = {}  # slot id -> worker address
        self._tails: list[_Tail] = []
        self._tail_task: asyncio.Task | None = None
        self._dir_fd: int | None = None
        self.stale = False  # a failed or cancelled run left tasks running in the workers
        self.dir = env.log_dir / "cluster" / (time.strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex())
        self.security: Any = None  # distributed Security (TLS) when workers run on other hosts
        self._remote: Any = None  # RemoteWorkers: the slots on other hosts
        self._remote_scheduler: tuple[str, int] | None = None  # (host, port) of a scheduler we start on another host

    # -- lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> WorkerCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> str:
        """Connect to the requested scheduler if one answers there, else start ours; returns how.

        A cold start waits for the workers (an interpreter each, importing Dask, pandas and the app):
        they are spawned first, all at once, and find the scheduler through its file, so their start
        overlaps this process's own import of Dask and the scheduler's start.
        """
        self.loop = asyncio.get_running_loop()
        remote = [h for h in self.workers if not is_local_host(h)]
        if self.requested_scheduler and scheduler_reachable(self.requested_scheduler):
            self.address, self.external = f"tcp://{self.requested_scheduler}", True
            how = "connected"
        else:
            self._remote_scheduler = self._scheduler_elsewhere()
            if remote or self._remote_scheduler:  # TLS between hosts; listening on the interface that reaches them only
                self._remote_setup(remote)
            else:
                self._listen = self._listen_address()
            self._spawn()  # from the loop's thread: the children die with it unless kept
            how = "started"
        self._tail_task = asyncio.create_task(self._follow())
        try:
            from distributed import Client

            if self._remote_scheduler is not None:
                self.address = await self._start_remote_scheduler()
            elif not self.external and not self.persistent:  # in this process: one interpreter less to start
                self.address = await self._start_scheduler()
            if not self.external and self.address is None:
                self.address = await self._wait_scheduler_file()
            if self._remote is not None:
                await self._start_remote()
            self.client = await asyncio.wait_for(Client(self.address, asynchronous=True, security=self.security),
                                                 START_TIMEOUT)
            await self._map_slots()
            await self._warm()
        except BaseException:
            await self.close()
            raise
        return how

    def _remote_setup(self, remote: list[str]) -> None:
        """Workers on other hosts: temporary TLS certificates for this cluster, the scheduler on the local
        address that routes to them (not every interface), and their SSH launcher."""
        from ..remote.install import remote_share
        from ..remote.options import SshOptions
        from ..remote.workers import RemoteWorkers
        from ..settings import AppSettings

        if self.persistent:
            raise RunError("a cluster kept across processes cannot have remote hosts yet: run without detaching",
                           worker=(remote or ["scheduler"])[0])
        cluster_settings = AppSettings(self.env).cluster
        self.security = cluster_security(cluster_settings)
        if self._remote_scheduler:  # local workers listen where the scheduler's host reaches them
            try:
                _route_address(self._remote_scheduler[0])
            except RunError as exc:
                raise RunError(self._no_scheduler(str(exc))) from None
        address, warning = scheduler_interface(([self._remote_scheduler[0]] if self._remote_scheduler else []) + remote)
        if warning:
            self._emit(LogLine(text=warning, source="scheduler", level="WARNING"))
        self._listen = (address, 0)
        options = SshOptions.from_settings(cluster_settings)
        self._remote = RemoteWorkers(self.env, {h: self.workers[h] for h in remote}, options, self.bus, self.dir.name,
                                     share=remote_share(self.env, cluster_settings))

    async def _start_remote(self) -> None:
        from ..remote.errors import RemoteHostError

        try:
            await self._remote.start(self.address, self._tls_pem(), _dask_settings())
        except RemoteHostError as exc:
            raise RunError(str(exc), worker=f"{exc.host}-0") from None

    def _scheduler_elsewhere(self) -> tuple[str, int] | None:
        """(host, port) of the requested scheduler when nothing answers there and it names another machine:
        then the cluster starts it there over SSH."""
        if not self.requested_scheduler:
            return None
        host, port = parse_host_port(self.requested_scheduler, 8786)
        bare = host.strip("[]")
        if is_loopback(bare) or is_wildcard(bare) or is_local_host(bare):
            return None
        return host, port or 8786

    def _no_scheduler(self, why: str) -> str:
        host = self._remote_scheduler[0] if self._remote_scheduler else "?"
        return (f"no Dask scheduler answers at {self.requested_scheduler} and {host} is not this machine; "
                f"starting one there over SSH failed: {why}")

    async def _start_remote_scheduler(self) -> str:
        """The scheduler on its host, like a remote worker (its worker environment, the watchdog, TLS); this
        cluster's local workers find it through the scheduler file written here."""
        from ..fsutil import atomic_write_text
        from ..remote.errors import RemoteHostError

        host, port = self._remote_scheduler  # type: ignore[misc]
        try:
            address = await self._remote.start_scheduler(host, port, self._tls_pem(), _dask_settings(), START_TIMEOUT)
        except RemoteHostError as exc:
            raise RunError(self._no_scheduler(str(exc))) from None
        atomic_write_text(self.dir / "scheduler.json", json.dumps({"address": address}))
        self._emit(LogLine(text=f"Dask scheduler started on {host} at {address}", source="scheduler"))
        return address

    def _tls_pem(self) -> dict[str, str]:
        config = self.security.get_tls_config_for_role("worker")
        return {"ca": config["ca_file"], "cert": config["cert"], "key": config["key"]}

    def _tls_args(self) -> list[str]:
        """Local workers of a TLS cluster: the certificates as files only this user reads."""
        if self.security is None:
            return []
        folder = self.dir / "tls"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        args = []
        for name, flag in (("ca", "--tls-ca-file"), ("cert", "--tls-cert"), ("key", "--tls-key")):
            path = folder / f"{name}.pem"
            path.touch(mode=0o600)
            path.write_text(self._tls_pem()[name])
            args += [flag, str(path)]
        return [*args, "--protocol", "tls"]

    def _listen_address(self) -> tuple[str, int]:
        """Where a scheduler of ours listens: loopback on a free port, or the requested address when it
        is this machine's. Beyond loopback only with the explicit opt-in, and then with a warning."""
        if not self.requested_scheduler:
            return "127.0.0.1", 0
        host, port = parse_host_port(self.requested_scheduler, 8786)
        bare, port = host.strip("[]"), port or 0
        if is_loopback(bare):
            return bare, port
        where = "every interface" if is_wildcard(bare) else bare
        risk = (f"a Dask scheduler on {where} (port {port}) lets anyone who reaches it run code on this machine: "
                "Dask has no login")
        if os.environ.get(EXPOSE_SCHEDULER_ENV) != "1":
            raise RunError(f"scheduler {self.requested_scheduler} refused: {risk}. Leave the scheduler empty (loopback), "
                           f"or set {EXPOSE_SCHEDULER_ENV}=1 to accept the risk")
        self._emit(LogLine(text=f"{EXPOSE_SCHEDULER_ENV}=1: {risk}; its HTTP pages stay on loopback",
                           source="scheduler", level="WARNING"))
        return bare, port

    async def _start_scheduler(self) -> str:
        import dask
        from distributed import Scheduler

        host, port = self._listen
        _quiet_distributed(self.env.verbose)
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            # The HTTP endpoints bind loopback on a free port, never 8787 on every interface.
            self.scheduler = Scheduler(host=host, port=port, dashboard=False, dashboard_address=_HTTP_LOOPBACK,
                                       security=self.security, protocol="tls" if self.security else None,
                                       scheduler_file=str(self.dir / "scheduler.json"))  # the workers wait for it
        await self.scheduler
        return self.scheduler.address

    def _spawn(self) -> None:
        self._dir_fd = rundirs.claim(self.dir)  # held by every process below: the folder stays while they run
        sched_file = self.dir / "scheduler.json"
        sched_file.unlink(missing_ok=True)
        host, port = self._listen
        env = dask_process_env(str(self.cython_path) if self.cython_path else None)
        popen_kw: dict[str, Any] = {"env": env, "cwd": str(self.dir), "stdin": subprocess.DEVNULL,
                                    "pass_fds": () if self._dir_fd is None else (self._dir_fd,)}
        if self.persistent:
            popen_kw["start_new_session"] = True
        else:
            popen_kw["preexec_fn"] = partial(die_with_parent, os.getpid())
        commands: dict[str, list[str]] = {}
        if self.persistent:  # a kept scheduler is a process of its own (else it starts in this one)
            commands["scheduler"] = [str(self.python), "-m", "distributed.cli.dask_scheduler", "--host", host,
                                     "--port", str(port), "--no-dashboard", "--dashboard-address", _HTTP_LOOPBACK,
                                     "--scheduler-file", str(sched_file)]
        target = ["--scheduler-file", str(sched_file)]
        local = {h: n for h, n in self.workers.items() if is_local_host(h)}
        for slot in slot_ids(local):  # remote slots start over SSH (RemoteWorkers)
            commands[slot] = [str(self.python), "-m", "distributed.cli.dask_worker", *target, *self._tls_args(),
                              "--name", slot, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--memory-limit", "0",
                              # beside remote workers, reachable by them on the scheduler's interface
                              "--host", host if self._remote else "127.0.0.1",
                              "--dashboard-address", _HTTP_LOOPBACK, "--death-timeout", "60",
                              "--local-directory", str(self.dir / "work"),
                              # import the app (and pandas) while the scheduler starts, not after
                              "--preload", self.env.spec.worker_module]
        for name, cmd in commands.items():
            log = self.dir / f"{name}.log"
            with open(log, "wb") as out:
                self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **popen_kw)
            tail = _Tail(log, "scheduler" if name == "scheduler" else "worker", name)
            self._tails.append(tail)
        if self.persistent:
            self._write_state(sched_file)

    async def _wait_scheduler_file(self) -> str:
        sched_file = self.dir / "scheduler.json"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            proc = self.procs.get("scheduler")
            if proc is not None and proc.poll() is not None:
                raise RunError(f"the Dask scheduler exited with code {proc.returncode}; see {self.dir / 'scheduler.log'}")
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                return json.loads(sched_file.read_text())["address"]
            await asyncio.sleep(0.05)
        raise RunError(f"the Dask scheduler did not start within {START_TIMEOUT:.0f}s")

    async def _map_slots(self) -> None:
        """Wait for one worker per slot; map slot ids to worker addresses (by name, else by host)."""
        slots = slot_ids(self.workers)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            info = await self._identity()
            by_name = {str(w["name"]): addr for addr, w in info["workers"].items()}
            if all(s in by_name for s in slots):
                self.slot_workers = {s: by_name[s] for s in slots}
                break
            if self.external:
                mapped = self._map_by_host(info["workers"], slots)
                if mapped:
                    self.slot_workers = mapped
                    break
            dead = self.dead_slots() + (["scheduler"] if "scheduler" in self.procs and self.procs["scheduler"].poll() is not None else [])
            if dead and dead[0] not in self.procs:
                raise RunError(f"Dask worker {dead[0]} on a remote host exited while starting; see the Run logs",
                               worker=dead[0])
            if dead:
                raise RunError(f"Dask process {dead[0]} exited with code {self.procs[dead[0]].returncode} while starting; "
                               f"see {self.dir / (dead[0] + '.log')}", worker=dead[0])
            if time.monotonic() > deadline:
                missing = [s for s in slots if s not in by_name]
                raise RunError(f"workers {', '.join(missing)} did not join the scheduler {self.address} within {START_TIMEOUT:.0f}s",
                               worker=missing[0])
            await asyncio.sleep(0.05)
        for slot, addr in self.slot_workers.items():
            self._emit(WorkerEvent(worker=slot, state="joined", address=addr))

    async def _warm(self) -> None:
        from ..runtime import tasks

        try:
            await asyncio.wait_for(self.client.run(tasks.warm, self.env.spec.worker_ref, str(self.env.spec.src_path)), START_TIMEOUT)
        except Exception as exc:  # the first task will report the real import error with its partition
            self._emit(LogLine(text=f"could not pre-import the app on the workers: {exc}", source="scheduler", level="WARNING"))

    async def _identity(self) -> dict[str, Any]:
        try:
            return await self.client.scheduler.identity(n_workers=-1)
        except TypeError:  # older schedulers list every worker without the argument
            return await self.client.scheduler.identity()

    def _map_by_host(self, workers: Mapping[str, Any], slots: list[str]) -> dict[str, str] | None:
        mapped: dict[str, str] = {}
        for host, n in self.workers.items():
            here = sorted(a for a, w in workers.items() if w.get("host") == host or (is_local_host(host) and is_local_host(w.get("host", ""))))
            if len(here) < n:
                return None
            for i in range(n):
                mapped[f"{host}-{i}"] = here[i]
        return mapped

    async def _follow(self) -> None:
        while True:
            for proc in self.procs.values():  # a process that ended is collected now, not left a zombie
                proc.poll()
            for tail in self._tails:
                try:
                    tail.poll(self.bus)
                except Exception:  # a log that cannot be read must not stop the collecting above
                    logger.exception("cannot follow %s", tail.path)
            await asyncio.sleep(0.1)

    def _emit(self, event: Any) -> None:
        if self.bus is not None:
            self.bus.emit(event)

    def alive(self) -> bool:
        if self.stale or self.client is None or self.client.status != "running":
            return False
        if self.scheduler is not None and self.scheduler.status.name != "running":
            return False
        return all(p.poll() is None for p in self.procs.values()) and (self._remote is None or self._remote.alive())

    def dead_slots(self) -> list[str]:
        dead = [name for name, p in self.procs.items() if name != "scheduler" and p.poll() is not None]
        return dead + (self._remote.dead_slots() if self._remote is not None else [])

    async def close(self) -> None:
        """Stop the client and every process this cluster started (never an external scheduler)."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(), 5)
            self.client = None
        for tail in self._tails:
            tail.poll(self.bus)
        if self._tail_task is not None:
            self._tail_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tail_task
            self._tail_task = None
        if self._remote is not None:
            await self._remote.close()
        await asyncio.to_thread(self._terminate)
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.scheduler.close(), 5)
            self.scheduler = None
        if self.persistent and not self.external:
            self._state_file().unlink(missing_ok=True)

    def _terminate(self) -> None:
        procs = [p for p in self.procs.values() if p.poll() is None]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        deadline = time.monotonic() + 5
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()
        if self._dir_fd is not None:  # the logs stay (the newest few folders); the workers' scratch space goes
            rundirs.release(self.dir, self._dir_fd, scratch="work")
            self._dir_fd = None

    # -- a cluster kept across processes -----------------------------------------------------------
    def _state_file(self) -> Path:
        return self.env.user_app_dir / "cluster.json"

    def _write_state(self, sched_file: Path) -> None:
        from ..fsutil import atomic_write_text

        state = {"python": str(self.python), "workers": self.workers, "scheduler_file": str(sched_file),
                 "pids": {n: p.pid for n, p in self.procs.items()}, "created": time.time()}
        atomic_write_text(self._state_file(), json.dumps(state, indent=2))


class ClusterPool:
    """Warm clusters by (app, worker environment, worker map, scheduler)."""

    def __init__(self) -> None:
        self._clusters: dict[tuple, WorkerCluster] = {}
        self._lock = asyncio.Lock()

    @staticmethod
    def key(env: AgiEnv, python: Path, workers: Mapping[str, int], scheduler: str | None) -> tuple:
        return (env.app, str(env.home), str(python), tuple(workers.items()), scheduler or "")

    async def acquire(self, env: AgiEnv, python: Path, workers: Mapping[str, int], *, scheduler: str | None,
                      cython_path: Path | None, bus: EventBus, persistent: bool = False) -> tuple[WorkerCluster, str]:
        key = self.key(env, python, workers, scheduler)
        self._drop_foreign_loops()
        async with self._lock:
            cluster = self._clusters.get(key)
            if cluster is not None and cluster.alive():
                cluster.bus = bus
                return cluster, "reused"
            if cluster is not None:
                self._clusters.pop(key, None)
                await cluster.close()
            adopted = await self._adopt(env, python, workers, scheduler, bus)
            if adopted is not None:
                self._clusters[key] = adopted
                return adopted, "reused"
            for other_key, other in list(self._clusters.items()):  # one warm cluster per app: free the old one
                if other_key[:2] == key[:2] and not other.persistent:
                    del self._clusters[other_key]
                    await other.close()
            cluster = WorkerCluster(env, python, workers, scheduler=scheduler, cython_path=cython_path, persistent=persistent)
            cluster.bus = bus
            how = await cluster.start()
            self._clusters[key] = cluster
            return cluster, how

    async def _adopt(self, env: AgiEnv, python: Path, workers: Mapping[str, int], scheduler: str | None,
                     bus: EventBus) -> WorkerCluster | None:
        """A cluster an earlier process kept (``--keep-cluster``), when it still answers."""
        state_file = env.user_app_dir / "cluster.json"
        if scheduler or not state_file.is_file():
            return None
        try:
            state = json.loads(state_file.read_text())
            address = json.loads(Path(state["scheduler_file"]).read_text())["address"]
        except (OSError, ValueError, KeyError):
            return None
        if state.get("python") != str(python) or state.get("workers") != dict(workers):
            return None
        if not scheduler_reachable(address.removeprefix("tcp://")):
            state_file.unlink(missing_ok=True)
            return None
        cluster = WorkerCluster(env, python, workers, scheduler=address.removeprefix("tcp://"), persistent=True)
        cluster.bus = bus
        await cluster.start()  # connects: close() leaves the kept processes running
        return cluster

    def _drop_foreign_loops(self) -> None:
        """Clusters started on another (finished) event loop cannot be driven from this one: stop them."""
        current = asyncio.get_running_loop()
        if getattr(self, "_loop", None) is not current:
            self._lock = asyncio.Lock()
            self._loop = current
        for key, cluster in list(self._clusters.items()):
            if getattr(cluster, "loop", current) is not current:
                del self._clusters[key]
                cluster._terminate()

    def discard(self, cluster: WorkerCluster) -> None:
        for key, value in list(self._clusters.items()):
            if value is cluster:
                del self._clusters[key]

    async def close_all(self, *, keep_persistent: bool = False) -> None:
        self._drop_foreign_loops()
        for key, cluster in list(self._clusters.items()):
            if keep_persistent and cluster.persistent:
                continue
            self._clusters.pop(key, None)
            await cluster.close()

    def __len__(self) -> int:
        return len(self._clusters)


cluster_pool = ClusterPool()


def stop_kept_cluster(env: AgiEnv) -> list[int]:
    """Stop a cluster an earlier process kept (``--keep-cluster``); returns the pids it signalled."""
    import psutil

    state_file = env.user_app_dir / "cluster.json"
    try:
        pids = list(json.loads(state_file.read_text()).get("pids", {}).values())
    except (OSError, ValueError):
        return []
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if str(env.log_dir) in " ".join(proc.cmdline()):  # never signal a recycled pid
                proc.terminate()
                procs.append(proc)
    _, alive = psutil.wait_procs(procs, timeout=5)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    state_file.unlink(missing_ok=True)
    return [p.pid for p in procs]
