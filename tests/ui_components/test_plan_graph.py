"""plan_graph: hosts → worker slots → partitions, weights on edges and nodes; load bars."""
from __future__ import annotations

import holoviews as hv

from agilab_panel.plan import Partition, build_plan
from agilab_panel.ui.plan_graph import compact_number, load_bars, plan_graph, plan_labels

WORKERS = {"127.0.0.1": 2, "node-b": 1}


def _plan(n: int = 5, workers: dict[str, int] = WORKERS):
    return build_plan("demo", [Partition(f"p{i}", float(i + 1)) for i in range(n)], workers, {"n": n})


def _edges(graph: hv.Graph) -> dict[tuple[str, str], float]:
    frame = graph.dframe()
    return {(s, t): w for s, t, w in zip(frame["source"], frame["target"], frame["weight"])}


def test_nodes_and_edges_follow_the_plan() -> None:
    plan = _plan()
    graph = plan_graph(plan)
    nodes = graph.nodes.dframe().set_index("index")
    assert set(nodes.index) == ({"host:127.0.0.1", "host:node-b"} | {f"slot:{s}" for s in plan.slots}
                                | {f"partition:p{i}" for i in range(5)})
    edges = _edges(graph)
    loads = plan.loads()
    for slot in plan.slots:  # host → slot, weighted by the slot's load
        assert edges[(f"host:{plan.host_of(slot)}", f"slot:{slot}")] == loads[slot]
    for p in plan.partitions:  # slot → partition, weighted by the partition's weight
        assert edges[(f"slot:{plan.assignment[p.label]}", f"partition:{p.label}")] == p.weight
    assert len(edges) == len(plan.slots) + len(plan.partitions)
    assert nodes.loc["host:127.0.0.1", "weight"] == loads["127.0.0.1-0"] + loads["127.0.0.1-1"]
    assert nodes.loc["partition:p4", "text"] == "p4 (5)"
    assert list(nodes.loc[["host:node-b", "slot:node-b-0", "partition:p0"], "x"]) == [0.0, 1.0, 2.0]
    heavy, light = nodes.loc["partition:p4", "size"], nodes.loc["partition:p0", "size"]
    assert heavy > light  # node size grows with weight


def test_reassign_moves_the_edge() -> None:
    plan = _plan()
    target = next(s for s in plan.slots if s != plan.assignment["p0"])
    plan.reassign("p0", target)
    edges = _edges(plan_graph(plan))
    assert (f"slot:{target}", "partition:p0") in edges
    assert sum(1 for (_s, t) in edges if t == "partition:p0") == 1


def test_empty_slots_and_large_plans() -> None:
    plan = _plan(n=1, workers={"127.0.0.1": 3})
    nodes = plan_graph(plan).nodes.dframe()
    assert (nodes["kind"] == "slot").sum() == 3  # empty slots are drawn too
    big = _plan(n=50)
    graph = plan_graph(big, max_partitions=20)
    kinds = graph.nodes.dframe()["kind"].value_counts().to_dict()
    assert kinds.get("partition", 0) == 0 and kinds["group"] == 3
    group_weights = {t: w for (s, t), w in _edges(graph).items() if t.startswith("group:")}
    assert group_weights == {f"group:{s}": load for s, load in big.loads().items()}


def test_renders_with_labels_and_bars() -> None:
    plan = _plan()
    graph = plan_graph(plan)
    hv.render(graph * plan_labels(graph), backend="bokeh")
    bars = load_bars(plan)
    frame = bars.Bars.I.dframe()
    assert dict(zip(frame["slot"], frame["load"])) == plan.loads()
    hv.render(bars, backend="bokeh")


def test_compact_numbers() -> None:
    assert [compact_number(v) for v in (5, 0.25, 20_000, 3_418_471, 2.5e10)] == ["5", "0.25", "20k", "3.42M", "25G"]


def test_a_thousand_partitions_read_as_one_group_per_slot_with_the_detail_on_hover() -> None:
    plan = _plan(n=1000, workers={"127.0.0.1": 2, "node-b": 2})
    graph = plan_graph(plan)
    nodes = graph.nodes.dframe().set_index("index")
    assert nodes["kind"].value_counts().to_dict() == {"host": 2, "slot": 4, "group": 4}
    slot = plan.slots[0]
    parts = plan.by_slot()[slot]
    group = nodes.loc[f"group:{slot}"]
    assert group["name"] == f"{len(parts)} partitions" and group["weight"] == plan.loads()[slot]
    assert f"{parts[0].label} … {parts[-1].label}" in group["detail"] and "Workplan table" in group["detail"]
    assert "grouped per slot" in graph.opts.get().kwargs["title"]
    figure = hv.render(graph * plan_labels(graph), backend="bokeh")
    hover = [t for t in figure.tools if type(t).__name__ == "HoverTool"]
    assert hover and ("", "@{detail}") in hover[0].tooltips
    labels = plan_labels(graph).dframe()
    assert len(labels) == 10  # every node labelled: four groups are few enough


def test_many_leaves_keep_their_hover_but_lose_their_labels() -> None:
    plan = _plan(n=60, workers={f"h{i}": 16 for i in range(4)})  # 64 slots: more leaves than can be labelled
    graph = plan_graph(plan)
    kinds = graph.nodes.dframe()["kind"].value_counts().to_dict()
    assert kinds["group"] == 60  # a group per slot that holds partitions
    assert set(plan_labels(graph).dframe()["text"]) == set(
        graph.nodes.dframe().query("kind in ['host', 'slot']")["text"])
    few = plan_graph(_plan(n=30))  # under the threshold: one node per partition, all labelled
    assert few.nodes.dframe()["kind"].value_counts()["partition"] == 30
    assert len(plan_labels(few).dframe()) == len(few.nodes.dframe())
