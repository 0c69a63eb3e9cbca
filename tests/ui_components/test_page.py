"""OrchestratePage: the seed's section order, lazy sections, app switching, Run opening after INSTALL,
the Notebook download, the server's defaults, and the sections embedded in a real notebook."""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import nbformat
import panel as pn
import pytest

from agilab_panel.ui import offline
from agilab_panel.ui import page as page_module
from agilab_panel.ui.notebook_section import NotebookSection
from agilab_panel.ui.page import SECTIONS, OrchestratePage
from agilab_panel.ui.serve import page_factory, served_hosts, websocket_origins
from agilab_panel.ui.state import OrchestrateState

from .conftest import visible_text

ROOT = Path(__file__).resolve().parents[2]
SEED_ORDER = ["System settings", "Install", "Distribute", "Run", "Notebook", "Service mode", "LOAD DATA",
              "Prepare Data for Pipeline and Analysis"]


@pytest.fixture
def page(minimal_state: OrchestrateState) -> OrchestratePage:
    return OrchestratePage(minimal_state)


def test_sections_follow_the_seed_order(page: OrchestratePage) -> None:
    titles = [slot.spec.title for slot in page.slots.values()]
    assert titles == [t for t in SEED_ORDER if t in titles]
    assert [s.title for s in SECTIONS] == SEED_ORDER
    has_service = (Path(page_module.__file__).parent / "service_section.py").exists()
    assert ("Service mode" in titles) == has_service  # no placeholder for a section that does not exist


def test_only_the_first_sections_are_built_with_the_page(page: OrchestratePage) -> None:
    built = [key for key, slot in page.slots.items() if slot.built]
    assert built == ["settings", "install"]
    run = page.slots["run"]
    assert run.placeholder.collapsed and run.slot.objects == [run.placeholder]
    assert not page.state.installed and "run INSTALL first" in run.header.object  # a fresh home: nothing installed
    run.placeholder.collapsed = False  # the user opens it: built on the spot (no server here)
    assert run.built and type(run.section).__name__ == "RunSection"
    assert run.slot.objects[0] is run.section._layout  # the section replaced its placeholder
    assert run.section._layout.header is run.header and "run INSTALL first" in run.header.object  # hint stays
    assert page.section("prepare_data") is page.slots["prepare_data"].section


def test_eager_page_builds_everything(minimal_state: OrchestrateState) -> None:
    page = OrchestratePage(minimal_state, lazy=False)
    assert all(slot.built for slot in page.slots.values())


def test_template_and_sidebar(page: OrchestratePage) -> None:
    template = page.template
    assert isinstance(template, pn.template.FastListTemplate)
    assert template.title == "AGILAB · ORCHESTRATE"
    assert page.app_select.value == "minimal_app" and "flight_telemetry" in page.app_select.options
    text = visible_text(page.sidebar)
    assert "Settings loaded" in text and "Installed" in text and "app_settings.toml" in text


def test_app_change_rebuilds_the_sections_that_cannot_follow_it(page: OrchestratePage) -> None:
    run = page.section("run")
    settings = page.slots["settings"].section
    page.app_select.value = "flight_telemetry"
    assert page.state.env.app == "flight_telemetry"
    assert page.slots["settings"].section is settings  # it follows the state: kept, showing the new app
    assert settings.widgets and settings.state.settings.env.app == "flight_telemetry"
    assert page.slots["run"].built and page.slots["run"].section is not run  # it was open: rebuilt, not kept
    assert "## flight_telemetry" in page._heading.object


def test_successful_install_opens_run(page: OrchestratePage) -> None:
    state = page.state
    state.installed = False
    assert not page.slots["run"].built
    state.busy = "INSTALL"
    state.installed = True
    state.busy = ""
    run = page.slots["run"]
    assert run.built and not run.section._layout.collapsed
    assert "ready" in run.header.object and run.section._layout.header is run.header


def test_notebook_section_downloads_the_recipe(minimal_state: OrchestrateState) -> None:
    section = NotebookSection(minimal_state)
    assert section.download.filename == "minimal_app_orchestrate.ipynb"
    assert "INSTALL, CHECK distribute, RUN" in visible_text(section)
    data = section._notebook_bytes()
    assert data is not None
    nb = nbformat.reads(data.getvalue().decode(), as_version=4)
    sources = "\n".join(c.source for c in nb.cells)
    assert "AGI.install(" in sources and "AGI.get_distrib(" in sources and "AGI.run(" in sources
    assert "Also saved as" in visible_text(section)


def test_server_defaults() -> None:
    assert websocket_origins("127.0.0.1", 5006) == ["localhost:5006", "127.0.0.1:5006"]
    assert websocket_origins("10.0.0.5", 8080) == ["10.0.0.5:8080"]
    assert websocket_origins("::1", 5006) == ["localhost:5006"]  # Bokeh's origin check cannot parse IPv6 literals
    assert websocket_origins("fe80::1", 5006, hosts=["dash.example.org"]) == ["dash.example.org"]
    everywhere = websocket_origins("0.0.0.0", 5006, "embed.example.org")
    assert {"localhost:5006", "127.0.0.1:5006", "embed.example.org"} <= set(everywhere)
    assert "0.0.0.0:5006" not in everywhere
    assert callable(page_factory(["x"]))


def test_served_host_names() -> None:
    assert served_hosts("127.0.0.1") == ["localhost", "127.0.0.1"]
    assert served_hosts("localhost") == ["localhost", "127.0.0.1", "::1"]
    assert served_hosts("[::1]", ["Dash.Example.org"]) == ["localhost", "::1", "dash.example.org"]
    assert served_hosts("192.0.2.7") == ["192.0.2.7"]
    everywhere = served_hosts("0.0.0.0")
    assert {"localhost", "127.0.0.1", socket.gethostname().lower()} <= set(everywhere) and "0.0.0.0" not in everywhere


def test_notebook_embedding_runs(tmp_path: Path) -> None:
    """dashboards/orchestrate_embed.ipynb runs top to bottom in a kernel of this Python."""
    from nbclient import NotebookClient

    kernels = tmp_path / "jupyter" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python",
    }))
    env = dict(os.environ, JUPYTER_PATH=str(tmp_path / "jupyter"), PYTHONPATH=str(ROOT))
    old = dict(os.environ)
    os.environ.update(env)
    try:
        nb = nbformat.read(ROOT / "dashboards" / "orchestrate_embed.ipynb", as_version=4)
        NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "flight_telemetry · installed:" in printed
    rendered = [o for o in outputs if o.output_type in ("display_data", "execute_result")]
    bundles = [o["data"] for o in rendered]
    assert sum("application/vnd.holoviews_load.v0+json" in b or "text/html" in b for b in bundles) >= 3
    assert any("RunRequest(" in b.get("text/plain", "") for b in bundles)


def test_dropped_sections_stop_following_the_state(page: OrchestratePage) -> None:
    run = page.section("run")
    load = page.section("load_data")
    page.app_select.value = "flight_telemetry"  # Run is dropped and rebuilt, LOAD DATA follows the new app
    before = run.snippet.code
    page.state.benchmark_all = not page.state.benchmark_all
    assert run.snippet.code == before  # the old Run section no longer reacts
    assert page.slots["load_data"].section is load and load._state_watchers._items


def test_the_page_needs_nothing_from_other_hosts(minimal_state: OrchestrateState) -> None:
    """Button icons are inline SVG (an icon name makes BokehJS fetch a web font from a CDN) and every file
    the template links is served by the page's own server (no Google Fonts)."""
    page = OrchestratePage(minimal_state, lazy=False)
    widgets = [w for slot in page.slots.values() for w in pn.panel(slot.section).select(pn.widgets.Widget)]
    icons = [w.icon for w in widgets if getattr(w, "icon", None)]
    assert len(icons) >= 10 and all(icon.startswith("<svg") for icon in icons)
    resources = page.template.resolve_resources(cdn=False)
    links = [url for kind in ("js", "js_modules", "css") for url in resources[kind].values()]
    assert offline.FONT_CSS in links and not [url for url in links if "//" in url]
    assert (offline.ASSETS / "fonts" / "open-sans.css").is_file()


def test_the_app_cannot_change_while_an_action_runs(page: OrchestratePage) -> None:
    page.state.busy = "RUN"  # the outcome of an action is recorded for the app it ran for
    assert page.app_select.disabled
    page.state.busy = ""
    assert not page.app_select.disabled


def test_the_design_draws_the_cards_chevron() -> None:
    from agilab_panel.ui.offline import CARD_CSS, OfflineFast

    sheets = OfflineFast.modifiers[pn.Card]["stylesheets"]
    assert CARD_CSS in sheets and ".card-button svg" in CARD_CSS and "stroke: currentColor" in CARD_CSS


def test_an_app_switch_changes_the_page_once(page: OrchestratePage) -> None:
    run = page.section("run")  # built and open
    settings, notebook = page.slots["settings"].slot, page.slots["notebook"].slot
    shown, changed = [], []
    page.main.param.watch(lambda event: shown.append(list(event.new)), "objects")
    for key in ("settings", "notebook"):
        page.slots[key].slot.param.watch(lambda event, k=key: changed.append(k), "objects")
    page.app_select.value = "flight_telemetry"
    new = page.slots["run"].section
    assert new is not run and len(shown) == 1  # Install and Run, rebuilt, are shown in one change
    assert page.slots["run"].slot in shown[0] and page.slots["run"].slot.objects == [new._layout]  # no placeholder
    assert page.slots["install"].slot in shown[0] and page.slots["install"].section._layout in page.slots["install"].slot
    assert page.slots["settings"].slot is settings and page.slots["notebook"].slot is notebook and not changed
    # settings follows the app in place, notebook was never opened: their slots are untouched
    assert page.slots["notebook"].slot.objects == [page.slots["notebook"].placeholder]
