"""The service monitor alone: status, queue counts, health table and live plot of one app's service.

Serve it with ``panel serve dashboards/service_monitor.py --address 127.0.0.1 --args --app <app>``
(``?app=<name>`` in the URL wins; extra app folders come from ``--apps-path`` or ``AGILAB_APPS_PATH``).
In a notebook: ``from agilab_panel.ui.service_monitor import service_dashboard; service_dashboard("<app>")``.

It reads the service's files once a second while a browser shows it, so it keeps working when the
service stops and starts again. Panel's own server checks neither the Host header nor a login:
``agilab-panel serve`` does both and also serves ``/metrics`` (see README, Serving beyond this machine).
"""
import argparse
import os
import sys

import panel as pn

from agilab_panel.apps import apps_paths_from_environment
from agilab_panel.ui.page import load_extensions
from agilab_panel.ui.service_monitor import service_dashboard

parser = argparse.ArgumentParser(prog="service_monitor.py", description="Monitor an app's service.")
parser.add_argument("--app", help="the app whose service is shown")
parser.add_argument("--apps-path", action="append", default=[], help="an extra folder holding apps")
options, _unknown = parser.parse_known_args(sys.argv[1:])

load_extensions()
apps_path = options.apps_path or [os.fspath(p) for p in apps_paths_from_environment()]
app = (pn.state.session_args.get("app", [b""])[0].decode() or None) if pn.state.session_args else None
service_dashboard(app or options.app, apps_path).servable(title="AGILAB · Service monitor")
