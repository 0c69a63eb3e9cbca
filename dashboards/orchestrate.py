"""The ORCHESTRATE page: ``panel serve dashboards/orchestrate.py --address 127.0.0.1`` (or ``agilab-panel serve``).

Extra app folders come from ``AGILAB_APPS_PATH`` (separated like PATH); ``?app=<name>`` picks the app.
Panel's own server listens on every interface unless given ``--address``, and checks neither the Host
header nor a login: ``agilab-panel serve`` does both (see README, Serving beyond this machine).
"""
import os

import panel as pn

from agilab_panel.apps import apps_paths_from_environment
from agilab_panel.ui.page import load_extensions
from agilab_panel.ui.serve import session_page

load_extensions()
apps_path = [os.fspath(p) for p in apps_paths_from_environment()]
app = (pn.state.session_args.get("app", [b""])[0].decode() or None) if pn.state.session_args else None
session_page(app=app, apps_path=apps_path).servable()
