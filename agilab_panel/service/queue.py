"""The service queue: task files under the share, moved between folders by atomic renames.

Stdlib only (and the one atomic writer), because the worker loops import it. Everything a service
holds lives under ``<share>/service/<app>/``::

    queue/pending/<task>.json          submitted, not claimed yet (claimed oldest name first)
    queue/running/<task>@<slot>.json   claimed by the loop of <slot>: the rename is the claim
    queue/done/<task>.json             the task and what it produced
    queue/failed/<task>.json           the task and why it failed
    queue/heartbeats/<slot>.json       the latest heartbeat of each loop
    submissions/<submission>.json      one per submission: its tasks, then its reduced output, which is
                                       written to <data_out>/service/<submission>/ (removed with the record)
    results/<submission>/<task>.pkl    partition results until the submission is reduced
    control/stop, control/slot-<slot>  the stop request; the incarnation each slot's loop must have
    service.json, health.json          the service's state file and its health snapshot

A task is never lost: it is in exactly one of pending, running, done or failed; a task whose loop
died goes back to pending (its attempts counted) or, once its retries are spent, to failed with why.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..fsutil import atomic_path, atomic_write_text, remove_stale_temps

__all__ = [
    "TASK_SCHEMA",
    "QUEUE_FOLDERS",
    "ServicePaths",
    "Retention",
    "new_submission_id",
    "task_id",
    "submission_of",
    "safe_name",
    "enqueue",
    "claim",
    "parse_running",
    "task_files",
    "publish",
    "fail_corrupt",
    "requeue",
    "counts",
    "prune",
    "cleanup",
    "write_submission",
    "read_submission",
    "check_submission_id",
    "finish_submission",
    "unfinished_submissions",
    "save_results",
    "load_results",
    "output_dir",
]

TASK_SCHEMA = "agi.service.task.v1"
QUEUE_FOLDERS = ("pending", "running", "done", "failed")
OUTPUTS_FOLDER = "service"  # <data_out>/service/<submission>/: each submission's output
_UNSAFE = re.compile(r"[^A-Za-z0-9._:\[\]-]")


@dataclass(frozen=True)
class ServicePaths:
    """Every file of one app's service, under ``<share>/service/<app>/``.

    Each path is built once per instance (a loop asks for them several times a task).
    """

    root: Path

    @classmethod
    def of(cls, share: str | os.PathLike, app: str) -> ServicePaths:
        return cls(Path(share) / "service" / app)

    @cached_property
    def queue(self) -> Path:
        return self.root / "queue"

    @cached_property
    def pending(self) -> Path:
        return self.queue / "pending"

    @cached_property
    def running(self) -> Path:
        return self.queue / "running"

    @cached_property
    def done(self) -> Path:
        return self.queue / "done"

    @cached_property
    def failed(self) -> Path:
        return self.queue / "failed"

    @cached_property
    def heartbeats(self) -> Path:
        return self.queue / "heartbeats"

    @cached_property
    def submissions(self) -> Path:
        return self.root / "submissions"

    @cached_property
    def results(self) -> Path:
        return self.root / "results"

    @cached_property
    def control(self) -> Path:
        return self.root / "control"

    @cached_property
    def stop_flag(self) -> Path:
        return self.control / "stop"

    @cached_property
    def state_file(self) -> Path:
        return self.root / "service.json"

    @cached_property
    def health_file(self) -> Path:
        return self.root / "health.json"

    @cached_property
    def lock_file(self) -> Path:
        return self.root / "service.lock"

    @cached_property
    def last_output(self) -> Path:
        return self.root / "last_output.json"

    def slot_control(self, slot: str) -> Path:
        return self.control / f"slot-{safe_name(slot)}"

    def heartbeat_file(self, slot: str) -> Path:
        return self.heartbeats / f"{safe_name(slot)}.json"

    def folder(self, name: str) -> Path:
        return getattr(self, name)

    def ensure(self) -> ServicePaths:
        for path in (self.pending, self.running, self.done, self.failed, self.heartbeats, self.submissions,
                     self.results, self.control):
            path.mkdir(parents=True, exist_ok=True)
        return self


@dataclass(frozen=True)
class Retention:
    """Keep a folder's files younger than ``ttl_sec`` and at most ``max_files`` of them (0: no limit)."""

    ttl_sec: float
    max_files: int


# -- names -----------------------------------------------------------------------------------------
def safe_name(slot: str) -> str:
    """A slot id as a file name part (``127.0.0.1-0`` and ``[::1]-0`` stay as they are)."""
    return _UNSAFE.sub("_", slot).replace("@", "_")


_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,127}")


def check_submission_id(submission: object) -> str:
    """A submission id as a caller gives it back: it names files under the queue, so nothing else is read."""
    if not isinstance(submission, str) or not _ID.fullmatch(submission):
        raise ValueError(f"{submission!r} is not a submission id (letters, digits, '-' and '_', as submit returns)")
    return submission


def new_submission_id() -> str:
    """Ids sort in submission order, so the oldest pending task is claimed first."""
    now = time.time()
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"-{int(now % 1 * 1e6):06d}-{secrets.token_hex(3)}"


def task_id(submission: str, index: int) -> str:
    return f"{submission}.{index:05d}"


def submission_of(task: str) -> str:
    return task.rsplit(".", 1)[0]


def task_files(folder: Path) -> list[str]:
    """The task files of a folder (temporary files of writers in progress are not tasks)."""
    try:
        return [n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith(".")]
    except FileNotFoundError:
        return []


def parse_running(name: str) -> tuple[str, str]:
    """``<task>@<slot>.json`` -> (task id, slot file name)."""
    task, _, slot = name.removesuffix(".json").rpartition("@")
    return task, slot


# -- moving tasks ------------------------------------------------------------------------------------
def enqueue(paths: ServicePaths, tasks: Sequence[Mapping[str, Any]]) -> list[Path]:
    """Write each task into pending/, whole (a loop never sees half a task)."""
    written = []
    for task in tasks:
        path = paths.pending / f"{task['id']}.json"
        atomic_write_text(path, json.dumps(task, default=str), sweep=False)  # swept by cleanup()
        written.append(path)
    return written


def claim(paths: ServicePaths, slot: str, seen: list[str] | None = None) -> Path | None:
    """Take the oldest pending task for ``slot``; two loops racing for one task: one rename wins.

    ``seen`` (the caller's, kept between calls) holds the rest of the last listing, newest first, so
    a loop draining a backlog lists the folder once per backlog, not once per task.
    """
    names = seen if seen is not None else []
    for fresh in ((False, True) if names else (True,)):  # the rest of the last listing, then a new one
        if fresh:
            names[:] = sorted(task_files(paths.pending), reverse=True)
        while names:
            name = names.pop()
            target = paths.running / f"{name.removesuffix('.json')}@{safe_name(slot)}.json"
            try:
                os.rename(paths.pending / name, target)
            except FileNotFoundError:
                continue
            return target
    return None


def publish(paths: ServicePaths, running: Path, folder: str, record: Mapping[str, Any]) -> Path:
    """The task's record to done/ or failed/, then off running/ (a crash between leaves it finished, not lost)."""
    if folder not in ("done", "failed"):
        raise ValueError(f"a task ends in done or failed, not {folder!r}")
    target = paths.folder(folder) / f"{record['id']}.json"
    atomic_write_text(target, json.dumps(record, default=str), durable=False, sweep=False)  # hot path; read back checked
    running.unlink(missing_ok=True)
    return target


def fail_corrupt(paths: ServicePaths, running: Path, error: str) -> Path:
    """A task file that cannot be read as a task: to failed/ with the reason and the start of its bytes."""
    task, slot = parse_running(running.name)
    try:
        raw = running.read_bytes()[:4096].decode("utf-8", errors="replace")
    except OSError:
        raw = ""
    record = {"id": task, "error": f"corrupt task file: {error}", "content": raw, "worker": slot,
              "finished": time.time()}
    return publish(paths, running, "failed", record)


def requeue(paths: ServicePaths, running: Path, reason: str, max_retries: int) -> str:
    """A task left in running/ by a loop that ended: back to pending/, or to failed/ once retries are spent.

    Returns where it went: ``pending``, ``failed`` or ``finished`` (its record was already published).
    """
    task, slot = parse_running(running.name)
    if (paths.done / f"{task}.json").exists() or (paths.failed / f"{task}.json").exists():
        running.unlink(missing_ok=True)
        return "finished"
    try:
        record = json.loads(running.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        fail_corrupt(paths, running, str(exc))
        return "failed"
    record["attempts"] = int(record.get("attempts", 0)) + 1
    record.setdefault("interruptions", []).append({"time": time.time(), "worker": slot, "reason": reason})
    if record["attempts"] > max_retries:
        record["error"] = (f"gave up after {record['attempts']} attempt(s): the loop running it on {slot} "
                           f"ended ({reason})")
        record["finished"] = time.time()
        publish(paths, running, "failed", record)
        return "failed"
    atomic_write_text(paths.pending / f"{task}.json", json.dumps(record, default=str), sweep=False)
    running.unlink(missing_ok=True)
    return "pending"


def counts(paths: ServicePaths) -> dict[str, int]:
    return {name: len(task_files(paths.folder(name))) for name in QUEUE_FOLDERS}


# -- retention ---------------------------------------------------------------------------------------
def prune(folder: Path, retention: Retention, now: float | None = None,
          on_remove: Callable[[Path], None] | None = None) -> list[str]:
    """Delete files older than the TTL, then the oldest beyond ``max_files``; returns the names removed.

    ``on_remove(path)`` runs before each file goes (to remove what the file owns).
    """
    now = time.time() if now is None else now
    entries = []
    for name in task_files(folder):
        try:
            entries.append((os.stat(folder / name).st_mtime, name))
        except FileNotFoundError:
            continue
    expired = {name for mtime, name in entries if retention.ttl_sec > 0 and now - mtime > retention.ttl_sec}
    kept = sorted(((m, n) for m, n in entries if n not in expired), reverse=True)
    over = [name for _, name in kept[retention.max_files:]] if retention.max_files > 0 else []
    removed = []
    for name in [*sorted(expired), *over]:
        if on_remove is not None:
            on_remove(folder / name)
        try:
            (folder / name).unlink()
        except FileNotFoundError:
            continue
        removed.append(name)
    return removed


def cleanup(paths: ServicePaths, policy: Mapping[str, Retention], now: float | None = None) -> dict[str, int]:
    """Apply ``policy`` (``done``, ``failed``, ``heartbeats``); submission records follow ``done``.

    The temp files writers killed mid-write left in the queue go too: its hot writes do not look for
    them (listing a folder of thousands of files for each write cost more than the write).
    """
    for folder in (*(paths.folder(name) for name in QUEUE_FOLDERS), paths.heartbeats, paths.submissions):
        remove_stale_temps(folder)
    removed = {name: len(prune(paths.folder(name), policy[name], now)) for name in ("done", "failed", "heartbeats")}
    removed["submissions"] = len(prune(paths.submissions, policy["done"], now, on_remove=_drop_output))
    return removed


def output_dir(data_out: str | os.PathLike, submission: str) -> Path:
    """Where a submission's output goes: its own folder, so submissions never overwrite each other."""
    return Path(data_out) / OUTPUTS_FOLDER / submission


def _drop_output(record: Path) -> None:
    """The output folder of an expiring submission: only a folder named after it, under ``<data_out>/service/``."""
    try:
        folder = Path(json.loads(record.read_text(encoding="utf-8"))["output_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if folder.name == record.stem and folder.parent.name == OUTPUTS_FOLDER and not folder.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)


# -- submissions ---------------------------------------------------------------------------------------
def write_submission(paths: ServicePaths, record: Mapping[str, Any], *, durable: bool = True) -> Path:
    path = paths.submissions / f"{record['id']}.json"
    atomic_write_text(path, json.dumps(record, default=str), durable=durable, sweep=False)
    return path


def read_submission(paths: ServicePaths, submission: str) -> dict[str, Any] | None:
    try:
        record = json.loads((paths.submissions / f"{submission}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def save_results(paths: ServicePaths, task: str, results: list[tuple[str, Any, float]]) -> Path:
    path = paths.results / submission_of(task) / f"{task}.pkl"
    # read back once by the reduce, then deleted with the folder (so is a killed writer's temp: no sweep)
    with atomic_path(path, durable=False, sweep=False) as tmp:
        tmp.write_bytes(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def load_results(paths: ServicePaths, tasks: Sequence[str],
                 held: Mapping[str, list[tuple[str, Any, float]]] | None = None) -> list[list[tuple[str, Any, float]]]:
    """Each task's partition results: from ``held`` (the caller's own, in memory), else from its file."""
    held = held or {}
    return [held[t] if t in held else pickle.loads((paths.results / submission_of(t) / f"{t}.pkl").read_bytes())
            for t in tasks]


def _first_error(paths: ServicePaths, task: str) -> str:
    try:
        return str(json.loads((paths.failed / f"{task}.json").read_text(encoding="utf-8")).get("error", "")).split("\n")[0]
    except (OSError, ValueError, AttributeError):
        return "failed"


def unfinished_submissions(paths: ServicePaths) -> list[str]:
    """Submissions still open although every task of theirs is done or failed (their finisher died)."""
    found = []
    for name in sorted(task_files(paths.submissions)):
        record = read_submission(paths, name.removesuffix(".json"))
        if record is None or record.get("status") in ("done", "failed"):
            continue
        if all((paths.done / f"{t}.json").exists() or (paths.failed / f"{t}.json").exists()
               for t in record.get("tasks", [])):
            found.append(str(record.get("id", name.removesuffix(".json"))))
    return found


def _read_owner(marker: Path) -> dict[str, Any]:
    try:
        owner = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a folder left by an older engine, or unreadable: nobody's
        return {}
    return owner if isinstance(owner, dict) else {}


def _take_marker(marker: Path, owner: Mapping[str, Any],
                 stale: Callable[[dict[str, Any]], bool] | None) -> bool:
    """Create the finish marker naming ``owner``, whole (a hard link of a written file: no empty marker).

    A marker that exists is someone else's, unless ``stale(its owner)`` says its finisher is gone:
    then it is set aside and taken. Only one caller may pass ``stale`` at a time (the service's lock).
    """
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # there when made, gone when checked: a finisher closed the submission and removed it
        return False
    tmp = marker.with_name(f".finishing.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(json.dumps({**owner, "time": time.time()}, default=str), encoding="utf-8")
    except FileNotFoundError:  # the folder is gone: a finisher closed the submission meanwhile
        return False
    try:
        for _ in range(2):
            try:
                os.link(tmp, marker)
                return True
            except FileNotFoundError:  # as above, between our write and the link
                return False
            except FileExistsError:
                if stale is None or not stale(_read_owner(marker)):
                    return False
                try:
                    os.rename(marker, marker.with_name(f".finishing.stale-{secrets.token_hex(4)}"))
                except FileNotFoundError:
                    pass
                except OSError:  # an old marker folder that is not empty: cannot be set aside
                    return False
        return False
    finally:
        tmp.unlink(missing_ok=True)


def finish_submission(paths: ServicePaths, submission: str,
                      reduce: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None, *,
                      owner: Mapping[str, Any] | None = None,
                      stale: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any] | None:
    """Once every task of ``submission`` is done or failed, close it exactly once; returns its final record.

    All done: ``reduce(record)`` gives the output (what a RUN's reduce gives). Any failed: the record
    says which task and why. Whoever finishes the last task calls this; the first to create the
    finish marker (it names ``owner``) does the work, the others get None. A finisher that died
    holding the marker leaves the submission open: ``status`` takes it over with ``stale``.
    """
    record = read_submission(paths, submission)
    if record is None:
        return None
    if record.get("status") in ("done", "failed"):
        # a task run again after its loop was judged dead may save its results after the close: not kept
        shutil.rmtree(paths.results / submission, ignore_errors=True)
        return None
    tasks = list(record.get("tasks", []))
    failed = [t for t in tasks if (paths.failed / f"{t}.json").exists()]
    done = [t for t in tasks if (paths.done / f"{t}.json").exists()]
    if len(done) + len(failed) < len(tasks):
        return None
    if not _take_marker(paths.results / submission / ".finishing", owner or {"pid": os.getpid()}, stale):
        return None
    record = read_submission(paths, submission)  # closed meanwhile by a finisher that held the marker before
    if record is None or record.get("status") in ("done", "failed"):
        shutil.rmtree(paths.results / submission, ignore_errors=True)
        return None
    if failed:
        record.update(status="failed", errors={t: _first_error(paths, t) for t in failed})
    elif reduce is None:
        record.update(status="failed", errors={"reduce": "no reducer here: the loops reduce what they finish"})
    else:
        try:
            record.update(status="done", **dict(reduce(record)))
        except Exception as exc:  # the output cannot be written: the submission failed, saying why
            record.update(status="failed", errors={"reduce": f"{type(exc).__name__}: {exc}"})
    record["finished"] = time.time()
    write_submission(paths, record, durable=False)  # the outcome; the output file itself is written durably
    _drop_results(paths.results / submission, tasks)
    return record


def _drop_results(folder: Path, tasks: Sequence[str]) -> None:
    """A closed submission's results folder: the files it is known to hold, else (a temp left) all of it."""
    for name in (*(f"{t}.pkl" for t in tasks), ".finishing"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / name)
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
