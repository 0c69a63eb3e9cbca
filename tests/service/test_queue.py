"""The service queue on real files: one claim per task across processes, nothing ever lost, retention exact."""
from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from agilab_panel.service import queue as q


@pytest.fixture
def paths(tmp_path: Path) -> q.ServicePaths:
    return q.ServicePaths.of(tmp_path / "share", "app").ensure()


def _tasks(n: int, submission: str = "sub") -> list[dict]:
    return [{"id": q.task_id(submission, i), "submission": submission, "attempts": 0} for i in range(n)]


def _everywhere(paths: q.ServicePaths) -> list[str]:
    """Every task id in any queue folder (a running name carries its owner)."""
    ids = []
    for folder in q.QUEUE_FOLDERS:
        ids += [q.parse_running(n)[0] if folder == "running" else n.removesuffix(".json")
                for n in q.task_files(paths.folder(folder))]
    return sorted(ids)


def _claimer(root: str, slot: str, out: str) -> None:
    paths = q.ServicePaths(Path(root))
    got = []
    while (path := q.claim(paths, slot)) is not None:
        got.append(q.parse_running(path.name)[0])
    Path(out).write_text(json.dumps(got))


def test_four_processes_racing_claim_each_task_exactly_once(paths: q.ServicePaths, tmp_path: Path) -> None:
    q.enqueue(paths, _tasks(300))
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_claimer, args=(str(paths.root), f"h-{i}", str(tmp_path / f"got{i}.json")))
             for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    claimed = [t for i in range(4) for t in json.loads((tmp_path / f"got{i}.json").read_text())]
    assert sorted(claimed) == sorted(t["id"] for t in _tasks(300))
    assert q.counts(paths) == {"pending": 0, "running": 300, "done": 0, "failed": 0}
    owners = {q.parse_running(n)[1] for n in q.task_files(paths.running)}
    assert owners <= {f"h-{i}" for i in range(4)}


def test_claim_takes_the_oldest_and_ignores_files_being_written(paths: q.ServicePaths) -> None:
    q.enqueue(paths, _tasks(3, "s2") + _tasks(1, "s1"))
    (paths.pending / ".s0.00000.json.agtmp-host-1.abc.tmp").write_text("{")
    first = q.claim(paths, "127.0.0.1-0")
    assert first is not None and first.name == "s1.00000@127.0.0.1-0.json"
    assert q.counts(paths)["pending"] == 3


def test_publish_moves_a_task_to_done_or_failed_and_nowhere_else(paths: q.ServicePaths) -> None:
    q.enqueue(paths, _tasks(2))
    a, b = q.claim(paths, "w"), q.claim(paths, "w")
    q.publish(paths, a, "done", {"id": "sub.00000", "ok": True})
    q.publish(paths, b, "failed", {"id": "sub.00001", "error": "ValueError: no"})
    assert q.counts(paths) == {"pending": 0, "running": 0, "done": 1, "failed": 1}
    assert json.loads((paths.failed / "sub.00001.json").read_text())["error"] == "ValueError: no"
    with pytest.raises(ValueError, match="done or failed"):
        q.publish(paths, a, "pending", {"id": "sub.00000"})


def test_a_task_of_a_dead_loop_is_retried_then_failed_with_why_never_lost(paths: q.ServicePaths) -> None:
    q.enqueue(paths, _tasks(1))
    where = []
    for _ in range(3):
        running = q.claim(paths, "127.0.0.1-1")
        assert running is not None
        where.append(q.requeue(paths, running, "stale-heartbeat(12.0s)", max_retries=2))
        assert _everywhere(paths) == ["sub.00000"]
    assert where == ["pending", "pending", "failed"]
    record = json.loads((paths.failed / "sub.00000.json").read_text())
    assert record["attempts"] == 3 and len(record["interruptions"]) == 3
    assert record["error"] == ("gave up after 3 attempt(s): the loop running it on 127.0.0.1-1 ended "
                               "(stale-heartbeat(12.0s))")


def test_requeue_of_a_task_already_published_only_clears_running(paths: q.ServicePaths) -> None:
    q.enqueue(paths, _tasks(1))
    running = q.claim(paths, "w")
    (paths.done / "sub.00000.json").write_text(json.dumps({"id": "sub.00000"}))  # a crash between publish and unlink
    assert q.requeue(paths, running, "loop-error", 2) == "finished"
    assert q.counts(paths) == {"pending": 0, "running": 0, "done": 1, "failed": 0}


def test_a_corrupt_task_goes_to_failed_with_the_reason_and_its_bytes(paths: q.ServicePaths) -> None:
    (paths.pending / "bad.00000.json").write_bytes(b'{"id": "bad.00000", \xff')
    running = q.claim(paths, "w")
    q.fail_corrupt(paths, running, "not JSON")
    record = json.loads((paths.failed / "bad.00000.json").read_text())
    assert record["error"] == "corrupt task file: not JSON" and record["content"].startswith('{"id": "bad.00000"')
    assert _everywhere(paths) == ["bad.00000"]


def _aged(folder: Path, ages: dict[str, float], now: float) -> None:
    for name, age in ages.items():
        path = folder / f"{name}.json"
        path.write_text("{}")
        os.utime(path, (now - age, now - age))


def test_retention_deletes_exactly_what_the_ttl_and_max_files_say(paths: q.ServicePaths) -> None:
    now = time.time()
    _aged(paths.done, {"d-old1": 5000, "d-old2": 3601, "d-a": 100, "d-b": 200, "d-c": 300, "d-d": 400}, now)
    _aged(paths.failed, {"f-old": 7300, "f-a": 10, "f-b": 20}, now)
    _aged(paths.heartbeats, {"h-a": 10, "h-b": 20, "h-c": 30}, now)
    (paths.done / ".d-tmp.agtmp-host-1.x.tmp").write_text("{")
    policy = {"done": q.Retention(3600, 3), "failed": q.Retention(7200, 0), "heartbeats": q.Retention(0, 2)}
    removed = q.cleanup(paths, policy, now)
    assert removed == {"done": 3, "failed": 1, "heartbeats": 1, "submissions": 0}
    assert sorted(q.task_files(paths.done)) == ["d-a.json", "d-b.json", "d-c.json"]  # the 3 newest under the TTL
    assert sorted(q.task_files(paths.failed)) == ["f-a.json", "f-b.json"]  # max 0: no limit
    assert sorted(q.task_files(paths.heartbeats)) == ["h-a.json", "h-b.json"]  # TTL 0: none, the 2 newest
    assert (paths.done / ".d-tmp.agtmp-host-1.x.tmp").exists()  # a writer's temporary file is not a record


@pytest.mark.parametrize("attempt", range(10))  # the finishers race: several tries show a lost race
def test_a_submission_is_finished_once_by_whoever_ends_its_last_task(paths: q.ServicePaths, attempt: int) -> None:
    q.write_submission(paths, {"id": "s", "status": "submitted", "tasks": ["s.00000", "s.00001"]})
    calls = []

    def reduce(record: dict) -> dict:
        calls.append(record["id"])
        return {"output": "out.parquet", "rows": 2}

    (paths.done / "s.00000.json").write_text("{}")
    assert q.finish_submission(paths, "s", reduce) is None  # one task still open
    (paths.done / "s.00001.json").write_text("{}")
    results, errors = [], []

    def finish() -> None:
        try:
            results.append(q.finish_submission(paths, "s", reduce))
        except Exception as exc:  # a finisher that lost the race must say None, not raise
            errors.append(exc)

    threads = [threading.Thread(target=finish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 4
    assert calls == ["s"] and [r["status"] for r in results if r] == ["done"]
    assert q.read_submission(paths, "s")["output"] == "out.parquet"
    assert not (paths.results / "s").exists()


def test_a_finisher_whose_results_folder_is_removed_under_it_says_none(paths: q.ServicePaths,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The lost race, made certain: the folder exists when this finisher makes it, and the winner closes the
    submission and removes the folder before the finisher checks it (Path.mkdir's exist_ok looks twice)."""
    q.write_submission(paths, {"id": "s", "status": "submitted", "tasks": ["s.00000"]})
    q.save_results(paths, "s.00000", [("p0", 1, 0.0)])
    (paths.done / "s.00000.json").write_text("{}")
    folder = paths.results / "s"
    is_dir, winners = Path.is_dir, []

    def winner_closes_first(self: Path) -> bool:
        if self == folder and not winners:
            winners.append(None)  # the winner's own check of the folder passes through
            winners[0] = q.finish_submission(paths, "s", lambda r: {"rows": 1})
        return is_dir(self)

    monkeypatch.setattr(Path, "is_dir", winner_closes_first)
    assert q.finish_submission(paths, "s", lambda r: pytest.fail("the loser does not reduce")) is None
    assert [w["status"] for w in winners] == ["done"] and q.read_submission(paths, "s")["rows"] == 1
    assert not folder.exists()


def test_results_saved_after_the_close_by_a_late_run_of_a_task_are_not_kept(paths: q.ServicePaths) -> None:
    q.write_submission(paths, {"id": "s", "status": "submitted", "tasks": ["s.00000"]})
    q.save_results(paths, "s.00000", [("p0", 1, 0.0)])
    (paths.done / "s.00000.json").write_text("{}")
    assert q.finish_submission(paths, "s", lambda r: {"rows": 1})["status"] == "done"
    assert not (paths.results / "s").exists()
    q.save_results(paths, "s.00000", [("p0", 1, 0.0)])  # the same task, run again by a loop judged dead
    assert q.finish_submission(paths, "s", lambda r: pytest.fail("a closed submission is not reduced again")) is None
    assert not (paths.results / "s").exists() and q.read_submission(paths, "s")["rows"] == 1


def test_a_submission_with_a_failed_task_fails_naming_it(paths: q.ServicePaths) -> None:
    q.write_submission(paths, {"id": "s", "status": "submitted", "tasks": ["s.00000", "s.00001"]})
    (paths.done / "s.00000.json").write_text("{}")
    (paths.failed / "s.00001.json").write_text(json.dumps({"error": "ValueError: partition 3\nTraceback..."}))
    record = q.finish_submission(paths, "s", lambda r: pytest.fail("a failed submission is not reduced"))
    assert record["status"] == "failed" and record["errors"] == {"s.00001": "ValueError: partition 3"}


def test_an_expiring_submission_takes_its_output_folder_and_nothing_else(paths: q.ServicePaths, tmp_path: Path) -> None:
    now = time.time()
    data_out = tmp_path / "share" / "app" / "data_out"
    outputs = {sub: q.output_dir(data_out, sub) for sub in ("old", "new", "odd")}
    for sub, folder in outputs.items():
        (folder / "output.parquet").parent.mkdir(parents=True)
        (folder / "output.parquet").write_text("x")
        record = {"id": sub, "status": "done", "output_dir": str(folder if sub != "odd" else data_out)}
        path = q.write_submission(paths, record)
        os.utime(path, (now - (9000 if sub != "new" else 10),) * 2)
    removed = q.cleanup(paths, {"done": q.Retention(3600, 0), "failed": q.Retention(0, 0),
                                "heartbeats": q.Retention(0, 0)}, now)
    assert removed["submissions"] == 2 and q.task_files(paths.submissions) == ["new.json"]
    assert not outputs["old"].exists() and outputs["new"].is_dir()
    assert data_out.is_dir() and outputs["odd"].is_dir()  # a record naming another folder removes nothing


def test_cleanup_sweeps_the_temps_killed_writers_left_in_the_queue(paths: q.ServicePaths, stalled_writer) -> None:
    import os
    import signal

    left = []
    for folder in (paths.pending, paths.done, paths.heartbeats, paths.submissions):
        proc, tmp = stalled_writer(folder / "x.json")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        left.append(tmp)
    q.enqueue(paths, [{"id": "s.00000"}])  # hot writes do not look for them
    assert all(tmp.exists() for tmp in left)
    q.cleanup(paths, {name: q.Retention(0, 0) for name in ("done", "failed", "heartbeats")})
    assert not any(tmp.exists() for tmp in left) and q.task_files(paths.pending) == ["s.00000.json"]


def test_a_closed_submission_takes_its_results_folder_with_what_a_killed_writer_left(paths: q.ServicePaths) -> None:
    q.write_submission(paths, {"id": "s", "status": "submitted", "tasks": ["s.00000", "s.00001"]})
    for task in ("s.00000", "s.00001"):
        q.save_results(paths, task, [(task, 1, 0.0)])
        (paths.done / f"{task}.json").write_text("{}")
    (paths.results / "s" / ".s.00001.pkl.agtmp-host-1.x.tmp").write_bytes(b"half")  # a writer killed mid-write
    record = q.finish_submission(paths, "s", lambda r: {"rows": sum(v for p in q.load_results(paths, r["tasks"])
                                                                       for _, v, _ in p)})
    assert record["status"] == "done" and record["rows"] == 2
    assert not (paths.results / "s").exists() and paths.results.exists()
