"""InPlacePlot: a plan of the same shape redraws the rendered Bokeh figure in place; another shape, a new one."""
from __future__ import annotations

import panel as pn
from bokeh.document import Document
from bokeh.models import ColumnDataSource, GraphRenderer

from agilab_panel.plan import Partition, build_plan
from agilab_panel.ui.inplace_plot import InPlacePlot
from agilab_panel.ui.plan_graph import bars_shape, load_bars, plan_tree, tree_shape


def _plan(weights: list[float], workers: dict[str, int] | None = None):  # noqa: ANN202
    return build_plan("minimal_app", [Partition(f"p{i}", w) for i, w in enumerate(weights)],
                      workers or {"127.0.0.1": 2}, {})


def _rendered(pane: pn.pane.HoloViews) -> tuple[Document, object]:
    doc = Document()
    root = pane.get_root(doc)
    doc.add_root(root)
    return doc, root


def _figure(pane: pn.pane.HoloViews, root: object) -> object:
    return pane._models[root.ref["id"]][0]


def test_same_shape_updates_the_rendered_figure_in_place() -> None:
    pane = pn.pane.HoloViews(None)
    plot = InPlacePlot(pane, load_bars, bars_shape)
    plot.show(_plan([1, 2, 3, 4]))
    _doc, root = _rendered(pane)
    figure = _figure(pane, root)

    heavier = _plan([10, 20, 30, 40])  # same slots: same figure, new numbers in its data source
    plot.show(heavier)
    assert _figure(pane, root) is figure and plot.figures == 1
    tops = [max(s.data["load"]) for s in figure.select(type=ColumnDataSource) if "load" in s.data]
    assert tops and max(tops) == max(heavier.loads().values())
    assert dict(zip(plot.element.Bars.I.dframe()["slot"], plot.element.Bars.I.dframe()["load"])) == heavier.loads()

    plot.show(_plan([1, 2, 3], {"127.0.0.1": 3}))  # other slots: the categorical axis changes, a new figure
    assert plot.figures == 2 and _figure(pane, root) is not figure


def test_the_tree_keeps_its_figure_for_a_plan_of_the_same_shape() -> None:
    pane = pn.pane.HoloViews(None)
    plot = InPlacePlot(pane, plan_tree, tree_shape)
    first = _plan([1, 1, 1, 1])
    plot.show(first)
    _doc, root = _rendered(pane)
    figure = _figure(pane, root)
    renderer = next(iter(figure.select(type=GraphRenderer)))

    second = _plan([5, 1, 1, 1])
    assert tree_shape(second) == tree_shape(first)
    plot.show(second)
    assert _figure(pane, root) is figure and plot.figures == 1
    nodes = renderer.node_renderer.data_source.data
    assert 5.0 in list(nodes["weight"]) and max(nodes["weight"]) == sum(second.loads().values())  # the host: all

    plot.show(_plan([1.0] * 6))  # more leaves: a taller figure
    assert plot.figures == 2 and _figure(pane, root) is not figure


def test_a_grouped_tree_redrawn_in_place_shows_the_new_counts_in_its_title() -> None:
    pane = pn.pane.HoloViews(None)
    plot = InPlacePlot(pane, plan_tree, tree_shape)
    plot.show(_plan([1.0] * 100))
    _doc, root = _rendered(pane)
    figure = _figure(pane, root)
    assert figure.title.text.startswith("100 partitions")
    plot.show(_plan([1.0] * 250))  # still one group per slot: the same figure, a new title
    assert _figure(pane, root) is figure and figure.title.text.startswith("250 partitions")
