"""Cluster task functions called directly (outside Dask): a slot's app worker is made once per run
and stopped as the slot's last task ends, or by ``finish_run`` when the run did not end well."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from agilab_panel.runtime import tasks
from agilab_panel.runtime.job import Job

WORKER = '''
from pathlib import Path

from agilab_panel.runtime import BaseWorker


class ProbeWorker(BaseWorker):
    def work_init(self):
        self._log("init")

    def work_pool(self, payload):
        if payload.get("fail"):
            raise ValueError("told to fail")
        return payload["n"]

    def stop(self):
        self._log("stop")
        if self.args["stop_fails"]:
            raise OSError("stop was told to fail")

    def _log(self, what):
        with open(self.args["log"], "a") as log:
            log.write(f"{what} {self.worker_id}\\n")
'''


@pytest.fixture
def make_job(tmp_path: Path):
    module = f"probe_{uuid.uuid4().hex[:8]}"  # a module of its own: nothing cached from another test
    (tmp_path / f"{module}.py").write_text(WORKER)
    log = tmp_path / "log.txt"

    def make(stop_fails: bool = False) -> tuple[Job, Path]:
        job = Job(run_id=uuid.uuid4().hex[:12], app="probe", worker_ref=f"{module}:ProbeWorker", src_path=str(tmp_path),
                  mode=4, args={"log": str(log), "stop_fails": stop_fails}, data_in=str(tmp_path), data_out=str(tmp_path),
                  output_name="out.parquet", slots={}, order=[])
        return job, log

    return make


def _parts(*numbers: int, fail: int | None = None) -> list[dict]:
    return [{"label": f"p{n}", "payload": {"n": n, "fail": n == fail}} for n in numbers]


def test_a_slot_app_worker_is_made_once_and_stopped_after_its_last_task(make_job):
    job, log = make_job()
    results = [tasks.run_partitions(job, "h-0", _parts(2 * i, 2 * i + 1), 3) for i in range(3)]
    assert [r[:2] for chunk in results for r in chunk] == [(f"p{n}", n) for n in range(6)]
    assert log.read_text().splitlines() == ["init h-0", "stop h-0"]
    assert tasks.finish_run(job.run_id) == 0  # nothing was left for the end of the run


def test_the_app_worker_stays_until_the_last_task_or_finish_run(make_job):
    job, log = make_job()
    tasks.run_partitions(job, "h-0", _parts(0), 2)
    tasks.run_partitions(job, "h-1", _parts(1))  # None: the caller stops it
    assert log.read_text().splitlines() == ["init h-0", "init h-1"]
    assert tasks.finish_run(job.run_id) == 2
    assert log.read_text().splitlines()[2:] == ["stop h-0", "stop h-1"]


def test_a_failed_task_is_not_counted_and_finish_run_stops_its_worker(make_job):
    job, log = make_job()
    tasks.run_partitions(job, "h-0", _parts(0), 2)
    with pytest.raises(ValueError, match="told to fail") as info:
        tasks.run_partitions(job, "h-0", _parts(1, 2, fail=1), 2)
    assert info.value.agi_partition == "p1"
    assert log.read_text().splitlines() == ["init h-0"]
    assert tasks.finish_run(job.run_id) == 1 and log.read_text().splitlines() == ["init h-0", "stop h-0"]
    tasks.run_partitions_pooled(job, "h-0", _parts(3), 1)  # a task ending after finish_run starts a worker of its own
    assert log.read_text().splitlines()[2:] == ["init h-0", "stop h-0"]


def test_a_stop_that_fails_is_printed_and_the_task_keeps_its_results(make_job, capsys):
    job, log = make_job(stop_fails=True)
    assert [r[:2] for r in tasks.run_partitions_pooled(job, "h-0", _parts(0, 1), 1)] == [("p0", 0), ("p1", 1)]
    assert log.read_text().splitlines() == ["init h-0", "stop h-0"]
    assert "OSError: stop was told to fail" in capsys.readouterr().err
