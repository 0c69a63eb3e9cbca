"""The ORCHESTRATE page: ``panel serve dashboards/orchestrate.py`` (or ``agilab-panel serve``).

Extra app folders come from ``AGILAB_APPS_PATH`` (separated like PATH); ``?app=<name>`` picks the app.
"""
import os

import panel as pn

from agilab_panel.ui.page import OrchestratePage, load_extensions

load_extensions()
apps_path = [p for p in os.environ.get("AGILAB_APPS_PATH", "").split(os.pathsep) if p]
app = (pn.state.session_args.get("app", [b""])[0].decode() or None) if pn.state.session_args else None
OrchestratePage(app=app, apps_path=apps_path).servable()
