"""In Chromium, a cluster RUN: the worker heartbeat plot says it waits, then draws a figure once the
workers' heartbeats arrive, and the Run section's progress ends with every partition done."""
from __future__ import annotations

import re

import pytest

from agilab_panel.ui.heartbeats import IDLE_TEXT, WAITING_TEXT

from .conftest import Served

pytestmark = [pytest.mark.ui, pytest.mark.integration, pytest.mark.timeout(900)]


def _figures(page: object) -> int:
    """Bokeh canvases on the page (each plot draws one)."""
    return page.locator("canvas").count()  # type: ignore[attr-defined]


def test_a_cluster_run_draws_the_workers_heartbeats(page: object, served: Served) -> None:
    field = page.get_by_label("Worker map")  # type: ignore[attr-defined]
    field.fill('{"127.0.0.1": 2}')
    field.press("Enter")
    page.get_by_text("2 worker slots").first.wait_for()  # type: ignore[attr-defined]
    page.get_by_role("switch", name="Enable cluster").click()  # type: ignore[attr-defined]
    page.get_by_text(re.compile(r"Run mode 4: dask")).first.wait_for()  # type: ignore[attr-defined]
    page.get_by_role("button", name="INSTALL", exact=True).click()  # type: ignore[attr-defined]
    page.get_by_text("Ready.").first.wait_for(timeout=300_000)  # type: ignore[attr-defined]

    idle = page.get_by_text(IDLE_TEXT).first  # type: ignore[attr-defined]
    idle.wait_for()  # the Run section opened itself; before any run, the plot says what it will show
    before = _figures(page)
    page.get_by_role("button", name="RUN", exact=True).click()  # type: ignore[attr-defined]
    page.get_by_text(re.compile(r"RUN done in [\d.,]+ s")).first.wait_for(timeout=300_000)  # type: ignore[attr-defined]
    page.get_by_text(re.compile(r"\b4( / 4)? partitions done")).first.wait_for()  # type: ignore[attr-defined]
    # the heartbeats arrived (sampled as the run starts and as it ends, shown at the plot's next update, a
    # second at most): no sentence is left in place of the plot (it would still say it waits)
    for text in (IDLE_TEXT, WAITING_TEXT):
        page.get_by_text(text).first.wait_for(state="hidden", timeout=10_000)  # type: ignore[attr-defined]
    assert _figures(page) >= before + 3  # progress timeline, partitions done, and the heartbeats
