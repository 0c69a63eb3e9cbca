"""The work plan: balancing partitions over worker slots, edits, persistence and staleness."""
from __future__ import annotations

import itertools
import json
import random

import pytest

from agilab_panel import plan as plan_module
from agilab_panel.plan import EXACT_LIMIT, Partition, PlanError, WorkPlan, balance, build_plan


def makespan(weights, owner, slots):
    loads = [0.0] * slots
    for w, s in zip(weights, owner):
        loads[s] += w
    return max(loads)


def brute_force_optimum(weights, slots):
    return min(makespan(weights, owner, slots) for owner in itertools.product(range(slots), repeat=len(weights)))


def lower_bound(weights, slots):
    return max(max(weights), sum(weights) / slots)


def partitions(*weights):
    return [Partition(f"p{i}", float(w), {"index": i}) for i, w in enumerate(weights)]


# -- balancing -------------------------------------------------------------------------------------
def test_every_weight_gets_a_valid_slot():
    owner = balance([5, 1, 1, 1, 2], 3)
    assert len(owner) == 5
    assert all(0 <= s < 3 for s in owner)


def test_exact_search_beats_greedy_where_greedy_is_not_optimal():
    weights = [3, 3, 2, 2, 2]  # largest-first gives 7; the optimum is 6 (3+3 | 2+2+2)
    assert makespan(weights, plan_module._greedy(weights, 2), 2) == 7
    assert makespan(weights, balance(weights, 2), 2) == 6


def test_exact_search_matches_brute_force_on_random_small_inputs():
    rng = random.Random(20240611)
    for _ in range(150):
        slots = rng.randint(1, 3)
        n = rng.randint(1, 7)
        weights = [rng.choice([rng.randint(1, 9), round(rng.uniform(0.1, 9.0), 2)]) for _ in range(n)]
        owner = balance(weights, slots)
        assert makespan(weights, owner, slots) == pytest.approx(brute_force_optimum(weights, slots)), (weights, slots)


def test_more_slots_than_partitions():
    weights = [4, 1, 2]
    owner = balance(weights, 5)
    assert len(set(owner)) == 3  # every partition alone on a slot
    assert makespan(weights, owner, 5) == 4


def test_zero_weights_and_empty_input():
    assert balance([], 3) == []
    assert makespan([0, 0, 0], balance([0, 0, 0], 2), 2) == 0


def test_large_inputs_use_greedy_within_four_thirds_of_the_lower_bound(monkeypatch):
    def no_exact(*args):
        raise AssertionError("the exact search must not run on large inputs")

    monkeypatch.setattr(plan_module, "_exact", no_exact)
    rng = random.Random(7)
    for _ in range(40):
        slots = rng.randint(2, 6)
        weights = [rng.uniform(1.0, 10.0) for _ in range(rng.randint(EXACT_LIMIT + 1, 60))]
        owner = balance(weights, slots)
        assert owner == plan_module._greedy(weights, slots)
        assert makespan(weights, owner, slots) <= 4 / 3 * lower_bound(weights, slots)


def test_small_inputs_use_the_exact_search(monkeypatch):
    calls = []
    real = plan_module._exact
    monkeypatch.setattr(plan_module, "_exact", lambda w, s: calls.append(len(w)) or real(w, s))
    balance([1.0] * EXACT_LIMIT, 3)
    assert calls == [EXACT_LIMIT]


@pytest.mark.parametrize(("weights", "slots", "message"), [([1, 2], 0, "at least one worker slot"), ([1, -2], 2, "negative")])
def test_balance_refuses_bad_input(weights, slots, message):
    with pytest.raises(PlanError, match=message):
        balance(weights, slots)


# -- a plan ----------------------------------------------------------------------------------------
@pytest.fixture
def plan() -> WorkPlan:
    return build_plan("demo", partitions(4, 3, 3, 2), {"127.0.0.1": 2, "node-b": 1}, {"size": 10, "partitions": 4})


def test_build_plan_balances_over_slots(plan):
    assert plan.slots == ["127.0.0.1-0", "127.0.0.1-1", "node-b-0"]
    assert set(plan.assignment) == {"p0", "p1", "p2", "p3"}
    assert sorted(plan.loads().values()) == [3, 4, 5]  # (4) (3) (3+2): no split of 4,3,3,2 over 3 slots does better
    assert sum(plan.loads().values()) == 12
    assert not plan.edited


def test_by_slot_and_hosts(plan):
    by_slot = plan.by_slot()
    assert list(by_slot) == plan.slots
    assert sorted(p.label for parts in by_slot.values() for p in parts) == ["p0", "p1", "p2", "p3"]
    assert plan.host_of("node-b-0") == "node-b"
    assert plan.host_of("127.0.0.1-1") == "127.0.0.1"


def test_reassign_moves_a_partition_and_changes_loads(plan):
    source = plan.assignment["p3"]
    target = next(s for s in plan.slots if s != source)
    before = plan.loads()
    plan.reassign("p3", target)
    after = plan.loads()
    assert plan.assignment["p3"] == target
    assert after[source] == before[source] - 2
    assert after[target] == before[target] + 2
    assert plan.edited


def test_reassign_to_the_same_slot_is_not_an_edit(plan):
    plan.reassign("p0", plan.assignment["p0"])
    assert not plan.edited


def test_reassign_many(plan):
    plan.reassign_many({"p0": "node-b-0", "p1": "node-b-0", "p2": "127.0.0.1-0", "p3": "127.0.0.1-0"})
    assert {s: [p.label for p in parts] for s, parts in plan.by_slot().items()} == {
        "127.0.0.1-0": ["p2", "p3"],
        "127.0.0.1-1": [],
        "node-b-0": ["p0", "p1"],
    }
    assert plan.loads() == {"127.0.0.1-0": 5, "127.0.0.1-1": 0, "node-b-0": 7}
    assert plan.edited


@pytest.mark.parametrize(
    ("label", "slot", "message"),
    [("p0", "node-c-0", "no worker slot 'node-c-0'"), ("p0", "127.0.0.1-2", "no worker slot"), ("nope", "node-b-0", "no partition labelled 'nope'")],
)
def test_bad_edits_are_refused(plan, label, slot, message):
    before = dict(plan.assignment)
    with pytest.raises(PlanError, match=message):
        plan.reassign(label, slot)
    assert plan.assignment == before
    assert not plan.edited


def test_save_and_load_round_trip(plan, tmp_path):
    plan.reassign("p3", next(s for s in plan.slots if s != plan.assignment["p3"]))
    path = plan.save(tmp_path / "apps" / "demo" / "distribution_tree.json")
    loaded = WorkPlan.load(path)
    assert loaded.app == "demo"
    assert loaded.workers == plan.workers
    assert loaded.args == plan.args
    assert loaded.partitions == plan.partitions
    assert loaded.assignment == plan.assignment
    assert loaded.loads() == plan.loads()
    assert loaded.edited is True
    assert loaded.created == plan.created
    data = json.loads(path.read_text())
    assert data["schema"] == "agilab.distribution_tree.v1"
    assert set(data["tree"]) == {"127.0.0.1", "node-b"}
    assert set(data["tree"]["node-b"]) == {"node-b-0"}


def test_load_refuses_bad_files(plan, tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("{not json")
    with pytest.raises(PlanError, match="not valid JSON"):
        WorkPlan.load(path)
    path.write_text(json.dumps({"schema": "something else"}))
    with pytest.raises(PlanError, match="not a work plan"):
        WorkPlan.load(path)
    for not_an_object in ([], "plan", 3, None):
        path.write_text(json.dumps(not_an_object))
        with pytest.raises(PlanError, match="not a work plan"):
            WorkPlan.load(path)
    data = plan.to_dict()
    data["assignment"]["p0"] = "ghost-0"
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError, match="unknown worker slots"):
        WorkPlan.load(path)
    data = plan.to_dict()
    del data["assignment"]["p0"]
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError, match="every partition must be assigned"):
        WorkPlan.load(path)


def test_save_refuses_an_invalid_plan(plan, tmp_path):
    plan.assignment["p0"] = "ghost-0"
    with pytest.raises(PlanError):
        plan.save(tmp_path / "plan.json")
    assert not (tmp_path / "plan.json").exists()


def test_mismatch_explains_what_changed(plan):
    assert plan.mismatch({"size": 10, "partitions": 4}, {"127.0.0.1": 2, "node-b": 1}) is None
    assert plan.mismatch({"partitions": 4, "size": 10}, {"node-b": 1, "127.0.0.1": 2}) is None
    reason = plan.mismatch({"size": 11, "partitions": 4}, plan.workers)
    assert reason is not None and "args changed" in reason and "size" in reason and "partitions" not in reason
    reason = plan.mismatch({"size": 10, "partitions": 4, "seed": 1}, plan.workers)
    assert reason is not None and "seed" in reason
    reason = plan.mismatch(plan.args, {"127.0.0.1": 3, "node-b": 1})
    assert reason is not None and "worker map changed" in reason and "3" in reason


def test_mismatch_survives_a_save(plan, tmp_path):
    loaded = WorkPlan.load(plan.save(tmp_path / "plan.json"))
    assert loaded.mismatch({"size": 10, "partitions": 4}, {"127.0.0.1": 2, "node-b": 1}) is None


def test_build_plan_validates_workers_and_weights():
    with pytest.raises(ValueError, match="positive int"):
        build_plan("demo", partitions(1), {"127.0.0.1": 0}, {})
    with pytest.raises(PlanError, match="negative"):
        build_plan("demo", partitions(-1), {"127.0.0.1": 1}, {})


def test_to_dict_is_a_snapshot_not_a_view(plan):
    before = dict(plan.assignment)
    data = plan.to_dict()
    data["assignment"]["p0"] = "ghost-0"
    data["workers"]["ghost"] = 1
    data["args"]["size"] = 99
    assert plan.assignment == before
    assert "ghost" not in plan.workers
    assert plan.args["size"] == 10


# -- weights and payloads are checked and normalised once, when the plan is built --------------------
@pytest.mark.parametrize("weight", [float("nan"), float("inf"), -float("inf"), -1.0, True, "3"])
def test_a_bad_weight_is_refused_naming_its_partition(weight):
    parts = [Partition("good", 1.0), Partition("engine-7", weight)]
    with pytest.raises(PlanError, match=r"partition 'engine-7' has weight .*finite number, not negative"):
        build_plan("demo", parts, {"127.0.0.1": 2}, {})


@pytest.mark.parametrize("weight", ["nan", "inf", -2, True, None])
def test_a_saved_plan_with_a_bad_weight_is_refused_naming_its_partition(plan, tmp_path, weight):
    path = plan.save(tmp_path / "plan.json")
    data = json.loads(path.read_text())
    data["partitions"][1]["weight"] = weight
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError, match=f"partition '{data['partitions'][1]['label']}' has weight"):
        WorkPlan.load(path)


def test_a_payload_that_is_not_json_data_is_refused_naming_its_partition():
    with pytest.raises(PlanError, match=r"partition 'p1' payload: a set value"):
        build_plan("demo", [Partition("p0", 1.0), Partition("p1", 1.0, {"files": {"a", "b"}})], {"127.0.0.1": 1}, {})
    with pytest.raises(PlanError, match="partition label 3 must be a non-empty string"):
        build_plan("demo", [Partition(3, 1.0)], {"127.0.0.1": 1}, {})


def test_fresh_and_saved_plans_hand_the_workers_the_same_values_in_every_mode(tmp_path):
    import pickle
    from pathlib import Path

    import numpy as np

    from agilab_panel import AgiEnv
    from agilab_panel.execute.common import make_job
    from agilab_panel.runtime.job import Job

    payload = {"range": (0, 5), "n": np.int64(3), "scale": np.float32(0.5), "file": Path("in") / "a.csv",
               "nested": {"pair": (1, (2, 3)), "flags": np.array([True, False])}}
    parts = [Partition("p0", np.float64(2.0), payload), Partition("p1", 1, {"range": (5, 9)})]
    fresh = build_plan("minimal_app", parts, {"127.0.0.1": 2}, {"window": (1, 2), "scale": np.float64(0.25)})
    loaded = WorkPlan.load(fresh.save(tmp_path / "plan.json"))
    assert repr(fresh.partitions) == repr(loaded.partitions)  # types too: no tuple, no numpy value, no Path
    assert fresh.partitions[0].payload == {"range": [0, 5], "n": 3, "scale": 0.5, "file": str(Path("in/a.csv")),
                                           "nested": {"pair": [1, [2, 3]], "flags": [True, False]}}
    assert repr(fresh.args) == repr(loaded.args) == repr({"window": [1, 2], "scale": 0.25})
    env = AgiEnv("minimal_app", verbose=0)
    jobs = [make_job(env, p, 0, tmp_path / "in", tmp_path / "out", None) for p in (fresh, loaded)]
    assert repr(jobs[0].slots) == repr(jobs[1].slots) and repr(jobs[0].args) == repr(jobs[1].args)
    # what each mode hands the worker: local runs read the job back from JSON, Dask runs unpickle it
    assert repr(Job.from_json(jobs[0].to_json()).slots) == repr(jobs[0].slots)
    assert repr(pickle.loads(pickle.dumps(jobs[0])).slots) == repr(jobs[0].slots)


def test_a_saved_plan_that_cannot_be_read_is_kept_when_a_new_one_replaces_it():
    import asyncio

    from agilab_panel import AGI, AgiEnv
    from agilab_panel.distrib import plan_for_run, resolve_inputs

    env = AgiEnv("minimal_app", verbose=0)
    env.plan_path.parent.mkdir(parents=True)
    broken = '{"schema": "agilab.distribution_tree.v1", "app": "minimal_app", "partitions": [\n'  # cut short
    env.plan_path.write_text(broken)
    plan, source, note = asyncio.run(plan_for_run(env, resolve_inputs(env)))
    assert source == "built" and "cannot be read" in note and "not valid JSON" in note
    backups = sorted(env.plan_path.parent.glob("distribution_tree.json.broken-*"))
    assert [b.read_text() for b in backups] == [broken]
    assert repr(WorkPlan.load(env.plan_path).partitions) == repr(plan.partitions)
    env.plan_path.write_text("[]")  # readable JSON, not a plan: an explicit save keeps it too
    AGI.save_plan(env, plan)
    backups = sorted(env.plan_path.parent.glob("distribution_tree.json.broken-*"))
    assert sorted(b.read_text() for b in backups) == sorted([broken, "[]"])


def _greedy_by_scanning_every_slot(weights, slots):
    """The balancing as first written (each partition scans every slot): the reference result."""
    loads, owner = [0.0] * slots, [0] * len(weights)
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        s = min(range(slots), key=lambda s: (loads[s], s))
        owner[i], loads[s] = s, loads[s] + weights[i]
    return owner


def test_the_greedy_balance_gives_the_same_assignment_as_scanning_every_slot():
    rng = random.Random(7)
    for _ in range(300):
        slots = rng.randint(1, 9)
        weights = [rng.choice([0.0, 1.0, 2.0, rng.random() * 10]) for _ in range(rng.randint(EXACT_LIMIT + 1, 60))]
        assert plan_module._greedy(weights, slots) == _greedy_by_scanning_every_slot(weights, slots)
        assert balance(weights, slots) == _greedy_by_scanning_every_slot(weights, slots)


def test_the_saved_tree_groups_each_host_slots_in_map_order():
    workers = {"node-a": 2, "10.0.0.1": 1, "node-a-1": 2}  # a host name that ends like a slot id of another
    parts = [Partition(f"p{i}", float(i % 4 + 1), {}) for i in range(20)]
    plan = build_plan("demo", parts, workers, {})
    data = plan.to_dict()
    expected = {host: {slot: [p.label for p in plan.partitions if plan.assignment[p.label] == slot]
                       for slot in plan.slots if slot.rsplit("-", 1)[0] == host} for host in workers}
    assert data["tree"] == expected
    assert list(data["loads"]) == plan.slots and data["loads"] == plan.loads()
    assert WorkPlan.from_dict(data).assignment == plan.assignment


@pytest.mark.parametrize("slot", ["node-a-2", "node-a-01", "node-a--1", "node-a-", "node-a-1-5", "10.0.0.1-x"])
def test_slot_ids_that_are_not_in_the_map_are_refused(slot):
    plan = build_plan("demo", [Partition("p0", 1.0, {})], {"node-a": 2, "10.0.0.1": 1, "node-a-1": 2}, {})
    with pytest.raises(PlanError, match="no worker slot"):
        plan.reassign("p0", slot)
    assert plan.has_slot("node-a-1-1") and plan.has_slot("node-a-1") and plan.has_slot("10.0.0.1-0")


def test_a_saved_plan_is_json_with_one_partition_and_one_assignment_per_line(tmp_path):
    parts = [Partition(f"p{i}", float(i + 1), {"i": i, "path": f"a/{i}.csv"}) for i in range(30)]
    plan = build_plan("demo", parts, {"127.0.0.1": 2, "node-b": 1}, {"size": 3})
    path = plan.save(tmp_path / "distribution_tree.json")
    text = path.read_text()
    assert json.loads(text) == json.loads(json.dumps(plan.to_dict()))
    lines = [line.rstrip(",") for line in text.splitlines()]
    for part in parts:
        assert sum(f'"label": "{part.label}"' in line for line in lines) == 1
        assert lines.count(f'    "{part.label}": "{plan.assignment[part.label]}"') == 1
    assert WorkPlan.load(path).assignment == plan.assignment
