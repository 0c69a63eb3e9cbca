"""Service mode: START / STATUS / HEALTH gate / STOP / SUBMIT, the service settings, and the live monitor.

:class:`ServiceControl` is the model: each action awaits one engine call (``AGI.serve`` or
``AGI.submit``) and records its outcome; :class:`ServiceSection` is the view over it, the settings of
``[service]`` and ``[cluster.service_health]`` (a value the model refuses is shown under its field and
not saved) and a :class:`~agilab_panel.ui.service_monitor.ServiceMonitor` that reads the service's
files once a second while the section is open in a session.
"""
from __future__ import annotations

import traceback
from typing import Any

import panel as pn
import param

from ..agi import AGI
from ..service.config import SERVICE_KEYS, ServiceSettings, load_service_settings, save_service_settings, with_overrides
from ..service.gate import evaluate_gate
from ..service.health import health_path
from ..settings import ServiceHealthSettings
from ..snippets import SERVICE_ACTIONS, service_snippet
from .deferred import show_when
from .logs import Watchers, details_card
from .offline import icon
from .run_section import muted
from .service_monitor import ServiceMonitor
from .settings_section import FieldMessage
from .snippet_view import SnippetView

__all__ = ["ServiceControl", "ServiceSection"]

_HEALTH_KEYS = tuple(k for k in ServiceHealthSettings.param if k != "name")
_BUTTONS = (("start", "START", "player-play", "primary"), ("status", "STATUS", "refresh", "light"),
            ("health", "HEALTH gate", "checks", "light"), ("stop", "STOP", "square", "danger"),
            ("submit", "SUBMIT", "file-export", "primary"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ServiceControl(param.Parameterized):
    """The service actions of one app (the page state's), and what the last one said."""

    busy = param.String(default="", doc="The action running now ('' when idle).")
    outcome = param.String(default="", doc="What the last action said (markdown).")
    ok = param.Boolean(default=True, doc="The last action succeeded (a failed gate is not a success).")
    error_details = param.String(default="", doc="Traceback of the last failed action.")
    snippet_action = param.Selector(default="start", objects=list(SERVICE_ACTIONS),
                                    doc="The action whose snippet is shown.")
    last_submission = param.String(default="")

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state

    async def act(self, action: str) -> Any:
        """Run one action (``start``, ``status``, ``health``, ``stop``, ``submit``) with the current settings."""
        if action not in SERVICE_ACTIONS:
            raise ValueError(f"service action must be one of {', '.join(SERVICE_ACTIONS)}, got {action!r}")
        if self.busy:
            return None
        self.state.refresh_from_disk()  # what other sessions saved counts
        env, settings = self.state.env, self.state.settings
        self.param.update(busy=action, snippet_action=action, error_details="")
        try:
            if settings is None:
                raise RuntimeError("the settings file could not be read (see System settings)")
            result = await getattr(self, f"_{action}")(env, settings)
        except Exception as exc:  # shown in the section: one line, the traceback on demand
            self.param.update(outcome=f"**{action.upper()} failed:** {_first_line(exc)}", ok=False,
                              error_details="".join(traceback.format_exception(exc)))
            return None
        finally:
            self.busy = ""
        return result

    async def _start(self, env: Any, settings: Any) -> dict[str, Any]:
        cluster = settings.cluster
        result = await AGI.serve(env, "start", scheduler=(cluster.scheduler or None) if cluster.cluster_enabled else None,
                                 workers=dict(cluster.workers), events=self.state.bus)
        return self._said(result)

    async def _status(self, env: Any, settings: Any) -> dict[str, Any]:
        return self._said(await AGI.serve(env, "status", events=self.state.bus))

    async def _stop(self, env: Any, settings: Any) -> dict[str, Any]:
        return self._said(await AGI.serve(env, "stop", events=self.state.bus))

    async def _health(self, env: Any, settings: Any) -> dict[str, Any]:
        payload = await AGI.serve(env, "health", events=self.state.bus)
        thresholds = settings.service_health
        gate = evaluate_gate(payload, allow_idle=thresholds.allow_idle, max_unhealthy=thresholds.max_unhealthy,
                             max_restart_rate=thresholds.max_restart_rate)
        verdict = "passes" if gate.passed else "fails"
        self.param.update(outcome=f"**HEALTH gate {verdict}: exit code {gate.code}** ({gate.reason}) · "
                                  f"health.json at `{payload['path']}`", ok=gate.passed)
        return {**payload, "gate": gate.to_dict()}

    async def _submit(self, env: Any, settings: Any) -> str:
        submission = await AGI.submit(env, events=self.state.bus, **settings.args_dict)
        self.param.update(last_submission=submission, ok=True,
                          outcome=f"**Submitted** `{submission}`: its tasks show in the queue counts below.")
        return submission

    def _said(self, result: dict[str, Any]) -> dict[str, Any]:
        self.param.update(outcome=f"**{result['action'].upper()}:** {result['message']}", ok=result["status"] != "error")
        return result


class ServiceSection(pn.viewable.Viewer):
    """The "Service mode" card: actions and their snippet, settings, queue counts, health table, live plot."""

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.control = ServiceControl(state)
        self._app = state.env.app
        self.monitor = ServiceMonitor(str(state.env.share), state.env.app)
        self._state_watchers, self._own = Watchers(), Watchers()
        self.snippet = SnippetView(state, "serve", render=lambda settings: service_snippet(
            self.control.snippet_action, settings))
        self.snippet_choice = pn.widgets.RadioButtonGroup.from_param(
            self.control.param.snippet_action, label="", color="light", margin=(5, 10))
        self.buttons: dict[str, pn.widgets.Button] = {}
        for action, label, name, color in _BUTTONS:
            button = pn.widgets.Button(label=label, icon=icon(name), color=color, width=140, margin=(5, 10))
            button.on_click(self._clicked(action))
            self.buttons[action] = button
        self._spinner = pn.indicators.LoadingSpinner(value=True, size=20, margin=(12, 10), visible=False)
        self._outcome = pn.pane.Alert("", visible=False, sizing_mode="stretch_width", margin=(5, 10))
        self._details = pn.Column(sizing_mode="stretch_width", margin=0)
        # the outcome and its details reach the page with the first action (see deferred.show_when)
        self._outcome_box = pn.Column(sizing_mode="stretch_width", margin=0, visible=False)
        self.fields: dict[str, pn.widgets.Widget] = {}
        self.messages: dict[str, FieldMessage] = {}
        self._settings_body = pn.Column(sizing_mode="stretch_width", margin=0)
        self._settings_card = pn.Card(self._settings_body, title="Service settings", collapsed=True,
                                      sizing_mode="stretch_width", margin=(5, 0))
        self._layout = pn.Card(
            muted("Persistent worker loops, one per worker slot, fed by SUBMIT: they keep running between actions "
                  "and after this page closes. STATUS restarts unhealthy loops; HEALTH gate judges the service "
                  "against the thresholds below. The snippet does the same from Python."),
            self.snippet_choice, self.snippet,
            pn.Row(*self.buttons.values(), self._spinner, sizing_mode="stretch_width", margin=0),
            self._outcome_box, self._settings_card, self.monitor,
            title="Service mode", sizing_mode="stretch_width", collapsible=True,
        )
        self._own.watch(self.control, lambda *_: self.snippet.refresh(), ["snippet_action"])
        self._own.watch(self.control, self._show_outcome, ["busy", "outcome", "ok", "error_details"])
        self._own.watch(self.control, self._after_action, ["busy"])
        self._own.watch(self._layout, self._visibility, ["collapsed"])
        self._own.watch(self._settings_card, self._build_settings, ["collapsed"])
        self._state_watchers.watch(state, self._follow_env, ["env"])
        self._state_watchers.watch(state, self._build_settings, ["settings", "env"])
        self._build_settings()
        self._show_outcome()

    @property
    def follows_app(self) -> bool:
        """The page keeps the section across an app switch, unless an action runs: its outcome belongs to the
        app it ran for, so the page closes the section and builds a new one for the new app."""
        return not self.control.busy

    def _follow_env(self, *_events: Any) -> None:
        env = self.state.env
        if env is None or env.app == self._app:  # the same app read again (a reseed): same service
            return
        self._app = env.app
        self.control.param.update(outcome="", ok=True, error_details="", last_submission="")
        self.monitor.follow(str(env.share), env.app)

    # -- actions and their outcome -------------------------------------------------------------------------
    def _clicked(self, action: str) -> Any:
        """A button's handler: a coroutine function, so Panel awaits the action on the session's loop."""
        async def click(_event: Any) -> None:
            await self.control.act(action)

        return click

    def _show_outcome(self, *_events: Any) -> None:
        control = self.control
        for button in self.buttons.values():
            button.disabled = bool(control.busy) or self.state.settings is None
        self._spinner.visible = bool(control.busy)
        self._outcome.param.update(object=control.outcome, alert_type="success" if control.ok else "danger",
                                   visible=bool(control.outcome) and not control.busy)
        self._details.objects = ([details_card(control.error_details)]
                                 if control.error_details and not control.busy else [])
        show_when(self._outcome_box, [self._outcome, self._details], bool(control.outcome or control.error_details))

    def _after_action(self, event: param.parameterized.Event) -> None:
        if not event.new and self.monitor.watching:
            self.monitor.tick()  # show what the action changed now, not at the next tick

    def _visibility(self, event: param.parameterized.Event) -> None:
        """A collapsed section reads nothing; opened again, it resumes."""
        if event.new:
            self.monitor.stop()
        elif self.monitor.shown:
            self.monitor.start()

    # -- settings -------------------------------------------------------------------------------------------
    def _build_settings(self, *_events: Any) -> None:
        """Read ``[service]``; its fields are made once the "Service settings" card is open (collapsed, they
        would cost the page some ninety models nobody sees), and made again for other settings."""
        settings = self.state.settings
        self._show_outcome()
        if settings is None:
            self.fields, self.messages = {}, {}
            self._settings_body.objects = [muted("The settings file could not be read (see System settings).")]
            return
        try:
            self._service = load_service_settings(settings)
        except Exception as exc:  # a bad [service] table: say where, change nothing
            self.fields, self.messages = {}, {}
            self._settings_body.objects = [pn.pane.Alert(_first_line(exc), alert_type="danger", margin=(5, 10))]
            return
        toggled = bool(_events) and all(event.name == "collapsed" for event in _events)
        if self._settings_card.collapsed:
            if not toggled:  # other settings: their fields are made when the card opens
                self.fields, self.messages = {}, {}
                self._settings_body.objects = []
            return
        if self.fields and toggled:
            return  # opened again: the fields made before still show these settings
        self.fields, self.messages = {}, {}
        rows: list[Any] = [pn.pane.Markdown("**Health gate** `[cluster.service_health]`", margin=(5, 10, 0, 10))]
        for key in _HEALTH_KEYS:
            rows += self._field(key, settings.service_health, self._health_changed)
        rows.append(pn.pane.Markdown("**Loops, retention and retries** `[service]`", margin=(10, 10, 0, 10)))
        for key in SERVICE_KEYS:
            rows += self._field(key, self._service, self._service_changed)
        self._settings_body.objects = self._grid(rows)

    @staticmethod
    def _grid(rows: list[Any]) -> list[Any]:
        """Headings full width, each field with its message under it, fields side by side."""
        out: list[Any] = []
        pending: list[Any] = []
        for item in rows:
            if isinstance(item, pn.pane.Markdown):
                if pending:
                    out.append(pn.FlexBox(*pending, margin=0))
                    pending = []
                out.append(item)
            else:
                pending.append(item)
        if pending:
            out.append(pn.FlexBox(*pending, margin=0))
        return out

    def _field(self, key: str, model: param.Parameterized, on_change: Any) -> list[Any]:
        parameter, value = model.param[key], getattr(model, key)
        common = dict(label=key, value=value, width=210, margin=(5, 10))
        if isinstance(parameter, param.Boolean):
            widget = pn.widgets.Switch(**common)
        elif isinstance(parameter, param.Integer):
            widget = pn.widgets.IntInput(**common, description=parameter.doc)
        elif isinstance(parameter, param.Number):
            widget = pn.widgets.FloatInput(**common, description=parameter.doc)
        else:
            widget = pn.widgets.TextInput(**common, description=parameter.doc)
        message = FieldMessage(widget)
        widget.param.watch(lambda event, key=key: on_change(key, event.new), "value")
        self.fields[key], self.messages[key] = widget, message
        return [pn.Column(widget, message, width=230, margin=0)]

    def _service_changed(self, key: str, value: Any) -> None:
        """Save one ``[service]`` field; a value the model refuses stays out of the file, said under the field."""
        try:
            if value is None:
                raise ValueError(f"service setting {key!r}: give a value")
            merged = with_overrides(self._service, {key: value})
            if key == "health_output_path":  # a relative path must stay in the share: refused here, not at START
                env = self.state.env
                health_path(env.share, env.app, value)
        except ValueError as exc:
            self.messages[key].error(_first_line(exc))
            return
        save_service_settings(self.state.settings, merged, key)
        self._service = merged
        self.messages[key].clear()

    def _health_changed(self, key: str, value: Any) -> None:
        """Save one health-gate threshold; a refused value leaves the model and the file as they were."""
        health = self.state.settings.service_health
        try:
            if value is None:
                raise ValueError(f"{key!r}: give a value")
            scratch = ServiceHealthSettings(**{k: getattr(health, k) for k in _HEALTH_KEYS})
            setattr(scratch, key, value)  # checked here first: a refused value never reaches the model
        except (ValueError, TypeError) as exc:
            self.messages[key].error(_first_line(exc))
            return
        setattr(health, key, value)
        self.state.settings.save_service_health(key)
        self.messages[key].clear()

    def service_settings(self) -> ServiceSettings:
        """The ``[service]`` values this section shows (as saved)."""
        return self._service

    # -- life -------------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop reading the service's files and following the state (the section is being dropped)."""
        self.monitor.close()
        self.snippet.close()
        self._state_watchers.clear()
        self._own.clear()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
