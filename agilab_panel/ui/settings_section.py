"""System settings: the cluster toggles and fields, written back to ``app_settings.toml`` on each change.

Toggles and free-text fields are bound to the :class:`~agilab_panel.settings.ClusterSettings` model;
the fields the model validates (scheduler ``host[:port]``, the worker map) go through it, and a value
it refuses is shown as an error under the field while the model and the file keep the last good value.
Every accepted change is saved at once (``AppSettings.save_cluster(name)``).
"""
from __future__ import annotations

import json
from typing import Any

import panel as pn
import param

from ..hosts import is_local_host
from ..modes import mode_expression, mode_to_str
from .logs import Watchers
from .offline import icon

__all__ = ["FieldMessage", "SystemSettingsSection", "workers_summary"]

_MUTED = {"color": "var(--neutral-foreground-hint, #6b6b6b)"}
_INVALID_CSS = ":host(.invalid) .bk-input { border-color: #d9534f; box-shadow: 0 0 0 1px #d9534f; }"
_PERSISTED = ("cluster_enabled", "pool", "cython", "rapids", "verbose", "scheduler", "user", "ssh_key_path",
              "ssh_trust_new_hosts", "workers", "workers_data_path")
_TRUST_NEW_HOSTS = ("When on, INSTALL records in known_hosts the key of a remote host never seen before, on first "
                    "use, and says so in its log; when off, such a host is refused and shown with a Trust button. "
                    "A changed host key is always refused.")
_WORKERS_EXAMPLE = '{"127.0.0.1": 2}'


class FieldMessage(pn.viewable.Viewer):
    """The error (or hint) shown right under one input; marks the input invalid while an error shows."""

    text = param.String(default="", doc="The message; empty hides it.")
    kind = param.Selector(default="error", objects=["error", "hint"])

    def __init__(self, widget: pn.widgets.Widget | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.widget = widget
        if widget is not None:
            widget.stylesheets = [*widget.stylesheets, _INVALID_CSS]
        self._pane = pn.pane.Alert("", alert_type="danger", margin=(0, 10, 5, 10), sizing_mode="stretch_width",
                                   visible=False, styles={"font-size": "13px", "padding": "4px 10px"})
        self._show()

    def error(self, text: str) -> None:
        self.param.update(text=text, kind="error")

    def clear(self) -> None:
        self.text = ""

    @property
    def is_error(self) -> bool:
        return bool(self.text) and self.kind == "error"

    @param.depends("text", "kind", watch=True)
    def _show(self) -> None:
        self._pane.object = self.text
        self._pane.alert_type = "danger" if self.kind == "error" else "info"
        self._pane.visible = bool(self.text)
        if self.widget is not None:
            classes = [c for c in self.widget.css_classes if c != "invalid"]
            self.widget.css_classes = classes + (["invalid"] if self.is_error else [])

    def __panel__(self) -> pn.viewable.Viewable:
        return self._pane


def workers_summary(workers: dict[str, int]) -> str:
    """``**3 worker slots** on 2 hosts: `127.0.0.1` × 2 (this machine), `node-1` × 1``."""
    slots = sum(workers.values())
    hosts = ", ".join(
        f"`{host}` × {n}" + (" (this machine)" if is_local_host(host) else "") for host, n in workers.items()
    )
    return (f"**{slots} worker slot{'s' if slots != 1 else ''}** on {len(workers)} "
            f"host{'s' if len(workers) != 1 else ''}: {hosts}")


def _mode_text(cluster: Any) -> str:
    mode = cluster.mode
    return (f"**Calculated mode hint:** {cluster.mode_hint}  \n"
            f"Mode string `{mode_to_str(mode)}` · in snippets `{mode_expression(mode)}`")


class SystemSettingsSection(pn.viewable.Viewer):
    """The "System settings" card of one app: execution toggles, scheduler, SSH, worker map, verbosity.

    Rebuilds itself when the state loads other settings (another app, a reseed). When the settings file
    cannot be read, shows why (file and line) and offers to reseed it from the app's copy.
    """

    saved_note = param.String(default="", doc="What the last save wrote (or why it could not).")
    follows_app = True  # the page keeps it across an app switch: it shows whatever app the state loads

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self._model_watchers = Watchers()
        self._state_watchers = Watchers()
        self.widgets: dict[str, pn.widgets.Widget] = {}
        self.messages: dict[str, FieldMessage] = {}
        self._fields: dict[str, pn.widgets.Widget] = {}  # the settings form's widgets, bound to one cluster at a time
        self._field_messages: dict[str, FieldMessage] = {}
        self._view: list[pn.viewable.Viewable] | None = None
        self._cluster: Any = None
        self._body = pn.Column(sizing_mode="stretch_width", margin=0)
        self._layout = pn.Card(self._body, title="System settings", sizing_mode="stretch_width", collapsible=True)
        self._state_watchers.watch(state, self._rebuild, ["settings", "settings_error"])
        self._rebuild()

    # -- building ------------------------------------------------------------------------------------
    def _rebuild(self, *_events: Any) -> None:
        self._model_watchers.clear()
        settings = self.state.settings
        if settings is None:
            self.widgets, self.messages = {}, {}
            self._body.objects = self._broken_view()
            return
        if self._view is None:  # made once: another app's settings bind to the same widgets
            self._view = [pn.panel(part) for part in self._settings_view()]  # as a layout holds them
        self.widgets, self.messages = dict(self._fields), dict(self._field_messages)
        self._bind(settings.cluster)
        if self._body.objects != self._view:  # each change of the children costs the page a pass over all its models
            self._body.objects = self._view

    def _broken_view(self) -> list[pn.viewable.Viewable]:
        reason = self.state.settings_error or "The settings could not be loaded."
        button = pn.widgets.Button(label="Reseed settings (keeps a backup)", color="warning", icon=icon("refresh"))
        button.on_click(self._reseed)
        self.widgets["reseed"] = button
        self._reseed_message = FieldMessage()
        return [
            pn.pane.Alert(
                "**The settings file could not be read**, so it is left untouched.  \n"
                f"`{reason}`  \n"
                "Fix the file by hand and reload the page, or start again from the app's versioned settings: "
                "the broken file is kept beside it as a backup.",
                alert_type="danger", sizing_mode="stretch_width",
            ),
            button,
            self._reseed_message,
        ]

    def _reseed(self, _event: Any = None) -> None:
        try:
            backup = self.state.reseed_settings()
        except Exception as exc:  # shown, not raised: the page stays usable
            self._reseed_message.error(f"Could not reseed the settings: {exc}")
            return
        if backup is not None:
            self.saved_note = f"Settings reseeded; the broken file was kept as {backup.name}."

    _LINKED = ("pool", "cython", "rapids", "cluster_enabled", "user", "ssh_key_path", "ssh_trust_new_hosts", "verbose",
               "workers_data_path")  # widgets and cluster params kept equal both ways while bound

    def _settings_view(self) -> list[pn.viewable.Viewable]:
        """The form's widgets and layout, bound to no cluster yet (see :meth:`_bind`)."""
        w = self._fields
        labels = {"pool": "pool", "cython": "cython", "rapids": "rapids", "cluster_enabled": "Enable cluster"}
        for name in labels:
            w[name] = pn.widgets.Switch(label=labels[name], width=130 if name == "cluster_enabled" else 80,
                                        margin=(8, 16, 8, 10))
        toggles = pn.Row(*(w[name] for name in labels), margin=(5, 0))
        self.mode_hint = pn.pane.Markdown(
            "", sizing_mode="stretch_width", margin=(0, 10),
            styles={"background": "var(--neutral-fill-rest, #f3f6fa)", "border-radius": "6px", "padding": "0 8px"},
        )
        w["scheduler"] = pn.widgets.TextInput(
            label="Scheduler host[:port]", placeholder="empty: start a scheduler on this machine",
            description="Dask scheduler to use in cluster mode, e.g. 192.168.1.10:8786 or [::1]:8786.",
            sizing_mode="stretch_width",
        )
        self._field_messages["scheduler"] = FieldMessage(w["scheduler"])
        w["scheduler"].param.watch(self._commit_scheduler, "value")
        w["workers"] = pn.widgets.TextInput(
            label="Worker map", placeholder=_WORKERS_EXAMPLE,
            description='JSON object of host → worker slots, e.g. {"192.168.1.21": 1, "192.168.1.22": 2}. '
                        "Hosts may be IPv4, IPv6 or DNS names.",
            sizing_mode="stretch_width",
        )
        self._field_messages["workers"] = FieldMessage(w["workers"])
        w["workers"].param.watch(self._commit_workers, "value")
        self._workers_summary = pn.pane.Markdown("", margin=(0, 10), styles=_MUTED, sizing_mode="stretch_width")
        w["user"] = pn.widgets.TextInput(
            label="SSH user", placeholder="for remote hosts (passwords are never stored)", sizing_mode="stretch_width",
        )
        w["ssh_key_path"] = pn.widgets.TextInput(
            label="SSH key path", placeholder="~/.ssh/id_ed25519", sizing_mode="stretch_width",
        )
        w["ssh_trust_new_hosts"] = pn.widgets.Switch(
            label="Trust new SSH hosts on first use", width=260, margin=(8, 16, 8, 10),
        )
        trust_note = pn.pane.Markdown(_TRUST_NEW_HOSTS, margin=(0, 10), styles=_MUTED, sizing_mode="stretch_width")
        # a number field, not a slider: the slider's handle has no name for assistive technology
        w["verbose"] = pn.widgets.IntInput(
            label="Verbosity level", start=0, end=3, step=1, width=220,
            description="Verbosity of the logs and of the generated AgiEnv, from 0 (least) to 3 (most).",
        )
        w["workers_data_path"] = pn.widgets.TextInput(
            label="Workers data path", placeholder="empty: the cluster share", sizing_mode="stretch_width",
        )
        for name in self._LINKED:  # the widget writes to whichever cluster is bound (refused values raise)
            w[name].param.watch(lambda event, n=name: self._cluster is not None and setattr(self._cluster, n, event.new),
                                "value")
        self._saved = pn.pane.Markdown(self.param.saved_note, styles=_MUTED, margin=(0, 10), sizing_mode="stretch_width")
        self._save_error = FieldMessage()
        m = self._field_messages
        return [
            toggles,
            self.mode_hint,
            pn.Row(
                pn.Column(w["scheduler"], m["scheduler"], sizing_mode="stretch_width"),
                pn.Column(w["workers"], m["workers"], self._workers_summary, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            pn.Row(w["user"], w["ssh_key_path"], sizing_mode="stretch_width"),
            pn.Row(w["ssh_trust_new_hosts"], trust_note, sizing_mode="stretch_width"),
            pn.Row(w["verbose"], w["workers_data_path"], sizing_mode="stretch_width"),
            self._save_error,
            self._saved,
        ]

    def _bind(self, cluster: Any) -> None:
        """Show ``cluster`` in the form and follow it (through _model_watchers: from_param or pn.bind would
        leave the model calling into this view after it is closed)."""
        w, labels = self._fields, ("pool", "cython", "rapids", "cluster_enabled")
        self._cluster = None  # the values shown below are the cluster's own: nothing to write back
        for name in self._LINKED:
            w[name].value = getattr(cluster, name)
        for message in self._field_messages.values():
            message.clear()
        self._save_error.clear()
        w["scheduler"].value = cluster.scheduler
        w["workers"].value = json.dumps(cluster.workers)
        self._cluster = cluster
        self._model_watchers.watch(cluster, lambda event: setattr(w[event.name], "value", event.new), list(self._LINKED))
        self._model_watchers.follow(cluster, list(labels), lambda: setattr(self.mode_hint, "object", _mode_text(cluster)))
        self._model_watchers.follow(cluster, ["workers"], lambda: setattr(
            self._workers_summary, "object", workers_summary(cluster.workers)))
        self._model_watchers.watch(cluster, self._persist, list(_PERSISTED))
        self._model_watchers.watch(cluster, self._model_to_text, ["scheduler", "workers"])
        self.saved_note = ""

    # -- field commits (the model validates; a refused value stays out of the model and the file) ----------
    def _commit_scheduler(self, event: param.parameterized.Event) -> None:
        cluster = self._cluster
        if cluster is None:  # being bound to a cluster: the value is that cluster's own
            return
        try:
            cluster.scheduler = event.new.strip()
        except ValueError as exc:
            kept = cluster.scheduler or "empty (a local scheduler)"
            self._field_messages["scheduler"].error(f"Not saved: {exc}. Use host or host:port (IPv6 as [addr]:port). "
                                             f"Keeping {kept}.")
        else:
            self._field_messages["scheduler"].clear()

    def _commit_workers(self, event: param.parameterized.Event) -> None:
        cluster, message = self._cluster, self._field_messages["workers"]
        if cluster is None:  # being bound to a cluster: the value is that cluster's own
            return
        try:
            value = json.loads(event.new)
        except json.JSONDecodeError as exc:
            message.error(f"Not saved: this is not JSON ({exc.msg} at column {exc.colno}), e.g. {_WORKERS_EXAMPLE}. "
                          f"Keeping {json.dumps(cluster.workers)}.")
            return
        if not isinstance(value, dict):
            message.error(f"Not saved: the worker map must be a JSON object of host → slots, e.g. {_WORKERS_EXAMPLE}. "
                          f"Keeping {json.dumps(cluster.workers)}.")
            return
        try:
            cluster.workers = value
        except ValueError as exc:
            message.error(f"Not saved: {exc}. Keeping {json.dumps(cluster.workers)}.")
        else:
            message.clear()

    def _model_to_text(self, *events: param.parameterized.Event) -> None:
        """Show values set elsewhere (a reload, another component) in the text fields."""
        for event in events:
            widget = self.widgets.get(event.name)
            text = json.dumps(event.new) if event.name == "workers" else event.new
            if widget is not None and not self.messages[event.name].is_error:
                current = widget.value
                same = False
                if event.name == "workers":
                    try:
                        same = json.loads(current) == event.new
                    except ValueError:
                        same = False
                else:
                    same = current.strip() == event.new
                if not same:
                    widget.value = text

    # -- saving --------------------------------------------------------------------------------------
    def _persist(self, *events: param.parameterized.Event) -> None:
        if self.state.reloading:  # the values come from the file: writing them back could undo a newer save
            return
        names = [e.name for e in events]
        try:
            self.state.settings.save_cluster(*names)
        except Exception as exc:  # a file broken meanwhile, a full disk: say so, keep the page alive
            self._save_error.error(f"Could not save {', '.join(names)}: {exc}")
            self.saved_note = ""
        else:
            self._save_error.clear()
            self.saved_note = f"Saved {', '.join(names)} to app_settings.toml."

    def close(self) -> None:
        """Stop following the state and the settings model (the section is being dropped)."""
        self._state_watchers.clear()
        self._model_watchers.clear()
        self._cluster = None  # its widgets no longer write to the settings either

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
