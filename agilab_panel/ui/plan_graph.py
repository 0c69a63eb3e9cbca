"""The distribution tree of a work plan as a HoloViews graph: hosts → worker slots → partitions.

Pure functions of a :class:`~agilab_panel.plan.WorkPlan`: the same plan always gives the same graph,
so it is easy to test and cheap to redraw after each edit. Edge weights are partition weights (a
slot's edge carries its load), node sizes grow with the weight they carry, and every node has a text
label showing its name and weight.
"""
from __future__ import annotations

import math

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401 - registers the bokeh options used below
import pandas as pd
from bokeh.models import NumeralTickFormatter

from ..plan import WorkPlan
from .plot_style import CANVAS

__all__ = ["MAX_LEAVES", "plan_graph", "plan_labels", "plan_tree", "tree_shape", "load_bars", "bars_shape",
           "compact_number", "NODE_COLORS"]

NODE_COLORS = {"host": "#37474f", "slot": "#1976d2", "partition": "#f57c00", "group": "#ffb74d"}
_LEVEL = {"host": 0.0, "slot": 1.0, "partition": 2.0, "group": 2.0}
_NODE_COLUMNS = ["x", "y", "index", "kind", "name", "weight", "text", "size", "color", "detail"]
MAX_LEAVES = 40  # partitions drawn one by one; beyond, one node per slot (labels would overlap)
_HOVER = [("", "@name"), ("weight", "@weight{0,0.[000]}"), ("", "@detail")]


def compact_number(value: float) -> str:
    """``5`` -> ``5``, ``20000`` -> ``20k``, ``3418471`` -> ``3.42M``: short enough for a label."""
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _layout(plan: WorkPlan, max_partitions: int) -> tuple[list[dict], list[tuple[str, str, float]]]:
    """Nodes (tidy rows) and weighted edges of the tree, laid out left to right, leaves evenly spaced."""
    by_slot = plan.by_slot()
    loads = plan.loads()
    aggregate = len(plan.partitions) > max_partitions
    nodes: list[dict] = []
    edges: list[tuple[str, str, float]] = []
    row = 0  # vertical position of the next leaf (top to bottom)
    for host in plan.workers:
        host_id = f"host:{host}"
        slot_ys: list[float] = []
        host_load = 0.0
        for slot in (s for s in plan.slots if plan.host_of(s) == host):
            slot_id = f"slot:{slot}"
            parts = by_slot[slot]
            leaf_ys: list[float] = []
            if aggregate and parts:
                leaf_id = f"group:{slot}"
                weight = sum(p.weight for p in parts)
                nodes.append({"index": leaf_id, "kind": "group", "name": f"{len(parts):,} partitions", "weight": weight,
                              "y": -row, "detail": _group_detail(slot, parts)})
                edges.append((slot_id, leaf_id, weight))
                leaf_ys.append(-row)
                row += 1
            else:
                for p in parts:
                    leaf_id = f"partition:{p.label}"
                    nodes.append({"index": leaf_id, "kind": "partition", "name": p.label, "weight": p.weight, "y": -row,
                                  "detail": f"on {slot}"})
                    edges.append((slot_id, leaf_id, p.weight))
                    leaf_ys.append(-row)
                    row += 1
            if not leaf_ys:  # an empty slot still takes a row
                leaf_ys.append(-row)
                row += 1
            y = sum(leaf_ys) / len(leaf_ys)
            nodes.append({"index": slot_id, "kind": "slot", "name": slot, "weight": loads[slot], "y": y,
                          "detail": f"worker slot of {host}: {len(parts):,} partitions"})
            edges.append((host_id, slot_id, loads[slot]))
            slot_ys.append(y)
            host_load += loads[slot]
        nodes.append({"index": host_id, "kind": "host", "name": host, "weight": host_load,
                      "y": sum(slot_ys) / len(slot_ys) if slot_ys else -row,
                      "detail": f"host: {len(slot_ys)} worker slots"})
    return nodes, edges


def _group_detail(slot: str, parts: list) -> str:
    """What a slot's group node stands for: its first and last partitions and the spread of weights."""
    weights = [p.weight for p in parts]
    span = parts[0].label if len(parts) == 1 else f"{parts[0].label} … {parts[-1].label}"
    return (f"on {slot}: {span}; weights {compact_number(min(weights))} to {compact_number(max(weights))} "
            f"(mean {compact_number(sum(weights) / len(weights))}); each one in the Workplan table")


def _nodes_frame(nodes: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(nodes, columns=["index", "kind", "name", "weight", "y", "detail"])
    frame["x"] = frame["kind"].map(_LEVEL)
    frame["text"] = [f"{n} ({compact_number(w)})" for n, w in zip(frame["name"], frame["weight"])]
    # Size by share of the largest weight of the same kind, so a tree of tiny partitions still reads.
    biggest = frame.groupby("kind")["weight"].transform("max").replace(0, 1)
    frame["size"] = [8 + 22 * math.sqrt(max(w, 0) / b) for w, b in zip(frame["weight"], biggest)]
    frame["color"] = frame["kind"].map(NODE_COLORS)
    return frame[_NODE_COLUMNS]


def plan_graph(plan: WorkPlan, max_partitions: int = MAX_LEAVES) -> hv.Graph:
    """The plan as a graph: host → slot edges weighted by the slot's load, slot → partition edges by the
    partition's weight. Node ids are ``host:<host>``, ``slot:<slot>``, ``partition:<label>``; beyond
    ``max_partitions`` partitions each slot gets one ``group:<slot>`` node ("N partitions") instead, whose
    hover names its partitions and their weights (the Workplan table lists each one).
    """
    nodes, edges = _layout(plan, max_partitions)
    frame = _nodes_frame(nodes)
    hv_nodes = hv.Nodes(frame, kdims=["x", "y", "index"],
                        vdims=["kind", "name", "weight", "text", "size", "color", "detail"])
    edge_frame = pd.DataFrame(edges, columns=["source", "target", "weight"])
    top = edge_frame["weight"].max() if len(edge_frame) else 1.0
    edge_frame["width"] = [1 + 5 * (w / top if top else 0) for w in edge_frame["weight"]]
    leaves = int((frame["kind"].isin(["partition", "group"])).sum()) or 1
    grouped = bool((frame["kind"] == "group").any())
    title = f"{len(plan.partitions):,} partitions on {len(plan.slots):,} worker slots"
    if grouped:
        title += " (grouped per slot: hover a group for its partitions)"
    graph = hv.Graph((edge_frame, hv_nodes), kdims=["source", "target"], vdims=["weight", "width"])
    return graph.opts(
        node_size="size", node_color="color", node_line_color="white", edge_line_width="width",
        edge_line_color="#90a4ae", edge_alpha=0.8, tools=["hover"], hover_tooltips=_HOVER, xaxis=None, yaxis=None,
        height=max(260, min(1200, 26 * leaves + 60)), responsive=True, padding=(0.25, 0.08),
        xlim=(-0.35, 2.9), title=title, framewise=True, backend_opts=CANVAS,
        backend="bokeh",
    )


def tree_shape(plan: WorkPlan, max_partitions: int = MAX_LEAVES) -> tuple[int, int, int]:
    """What the tree's figure is made for (hosts, slots, leaves: its height and its glyphs follow them);
    another plan of the same shape is drawn in the same figure."""
    leaves = len(plan.slots) if len(plan.partitions) > max_partitions else -len(plan.partitions)
    return len(plan.workers), len(plan.slots), leaves


def plan_tree(plan: WorkPlan) -> hv.Overlay:
    """The graph of :func:`plan_graph` with the labels of :func:`plan_labels`."""
    graph = plan_graph(plan)
    return graph * plan_labels(graph)


def plan_labels(graph: hv.Graph) -> hv.Labels:
    """Text beside each node of :func:`plan_graph`: name and weight (hosts and slots only when the leaves
    are too many to label apart)."""
    frame = graph.nodes.dframe()
    if int(frame["kind"].isin(["partition", "group"]).sum()) > MAX_LEAVES:  # too close to read: hover them
        frame = frame[~frame["kind"].isin(["partition", "group"])]
    return hv.Labels(frame, kdims=["x", "y"], vdims=["text"]).opts(
        text_align="left", xoffset=0.06, text_font_size="9pt", text_color="#37474f", backend="bokeh",
    )


def bars_shape(plan: WorkPlan) -> tuple[tuple[str, ...], int]:
    """What the load chart's figure is made for (its categorical axis and legend): the slots and hosts."""
    return tuple(plan.slots), len(plan.workers)


def load_bars(plan: WorkPlan) -> hv.Overlay:
    """Load (sum of partition weights) per worker slot, coloured by host, with the ideal even load."""
    loads = plan.loads()
    frame = pd.DataFrame({"slot": list(loads), "load": list(loads.values()),
                          "host": [plan.host_of(s) for s in loads]})
    ideal = sum(loads.values()) / len(loads) if loads else 0.0
    bars = hv.Bars(frame, kdims=["slot"], vdims=["load", "host"]).opts(
        color="host", cmap="Category10", tools=["hover"], ylabel="load (sum of weights)", xlabel="worker slot",
        yformatter=NumeralTickFormatter(format="0.[00]a"),
        xrotation=30 if len(loads) > 6 else 0, show_legend=len(plan.workers) > 1, framewise=True, backend="bokeh",
    )
    line = hv.HLine(ideal).opts(color="#c62828", line_dash="dashed", line_width=1.5, backend="bokeh")
    return (bars * line).opts(responsive=True, height=280, title="Load per worker slot (dashed: even share)",
                              backend_opts=CANVAS, backend="bokeh")
