"""dashboards/service_monitor.py: served by ``panel serve`` for the app its arguments or URL name, and a
monitor that keeps reporting while a real service stops and starts again."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agilab_panel import AGI, AgiEnv
from agilab_panel.service import queue as q
from agilab_panel.service.state import read_state
from agilab_panel.ui.service_monitor import service_dashboard

from service.test_service_dask import service_processes, until  # tests/ is on the path (rootdir conftest)

from .conftest import ROOT

SERVE = ("import sys; from panel.command import main; sys.argv = ['panel', 'serve', {script!r}, '--address', "
         "'{{address}}', '--port', '{{port}}', '--args', '--app', 'minimal_app']; main()")


def _document_text(served, **arguments: str) -> str:  # noqa: ANN001
    """The text of the served document of one session, as the browser receives it over the websocket."""
    import html

    import panel.models.tabulator  # noqa: F401  (the model types the document holds)
    from bokeh.client import pull_session

    url = f"http://127.0.0.1:{served.port}/service_monitor"
    with pull_session(url=url, arguments=arguments or None) as session:
        return html.unescape("\n".join(str(value) for model in session.document.models
                                        for value in model.properties_with_values(include_defaults=False).values()
                                        if isinstance(value, str)))


def test_the_dashboard_is_served_for_the_app_it_is_given(start_server) -> None:  # noqa: ANN001
    served = start_server(code=SERVE.format(script=str(ROOT / "dashboards" / "service_monitor.py")))
    page = served.request("/service_monitor")
    assert page.status == 200 and "<title>AGILAB · Service monitor</title>" in page.body
    shown = _document_text(served)
    assert "Service of minimal_app" in shown and "No service data yet" in shown
    assert "no service is running for app minimal_app" in shown, served.output()
    other = _document_text(served, app="no_such_app")  # ?app= wins over --app
    assert "No service monitor for app" in other and "no_such_app" in other and "Service of minimal_app" not in other
    assert "Traceback" not in served.output() and "ERROR" not in served.output()


@pytest.mark.integration
async def test_the_monitor_keeps_reporting_across_a_stop_and_a_start(installed, use_home) -> None:  # noqa: ANN001
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    paths = q.ServicePaths.of(env.share, env.app)
    assert read_state(paths) is None
    dashboard = service_dashboard("minimal_app")
    monitor, layout = dashboard.monitor, dashboard.__panel__()
    root = layout.get_root()  # shown, as in a notebook output or a browser session
    schedulers = []
    try:
        assert monitor.watching and monitor.status == "idle"
        for _ in range(2):
            await AGI.serve(env, "start", workers={"127.0.0.1": 2})
            state = read_state(paths)
            schedulers.append(state.scheduler)
            await until(lambda: monitor.status == "running" and len(monitor.rows) == 2, "the monitor sees the loops")
            assert all(r["healthy"] for r in monitor.rows)
            await AGI.serve(env, "stop", stop_timeout=10)
            assert service_processes(state.cluster_dir) == []
            await until(lambda: monitor.status == "idle" and not monitor.rows, "the monitor sees the stop")
        assert len(monitor.ages.data) >= 4
    finally:
        layout._cleanup(root)
        if read_state(paths) is not None:
            await AGI.serve(env, "stop", stop_timeout=5)
    assert not monitor.watching


def test_the_script_is_importable_without_a_server(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(sys, "argv", ["service_monitor.py", "--app", "minimal_app"])
    source = Path(ROOT / "dashboards" / "service_monitor.py").read_text()
    namespace: dict = {"__name__": "__main__"}
    exec(compile(source, "service_monitor.py", "exec"), namespace)  # what a notebook cell running it does
    assert namespace["options"].app == "minimal_app"
