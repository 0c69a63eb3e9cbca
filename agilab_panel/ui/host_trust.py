"""Under INSTALL: the remote hosts refused for their host key, with the key each one offers, and a
"Trust <host>" button for a host never seen before (never for a host whose key changed).

Trust on first use is the user's explicit choice: the host's key type and fingerprint are shown, the
button records exactly that key in known_hosts (:func:`agilab_panel.remote.trust_host_key` asks the
host again and refuses another key), then INSTALL can run again. A changed key shows the refusal only.
"""
from __future__ import annotations

import asyncio
from typing import Any

import panel as pn
import param

from ..hosts import is_local_host
from .offline import icon

__all__ = ["HostTrust", "key_refused_hosts"]


def key_refused_hosts(result: Any) -> list[str]:
    """Remote hosts of an install result that failed before anything ran there (at the ``ssh`` step):
    the ones whose host key may be what stopped them."""
    if result is None:
        return []
    found = []
    for host, outcome in result.hosts.items():
        ssh = outcome.step("ssh")
        if not outcome.ok and not is_local_host(host) and (ssh is None or not ssh.ok):
            found.append(host)
    return found


class HostTrust(pn.viewable.Viewer):
    """The host keys INSTALL could not verify: one notice per host, a Trust button for unknown keys."""

    offers = param.List(default=[], doc="Keys offered by hosts refused for their key (HostKeyOffer).")
    message = param.String(default="", doc="What the last Trust did (or why it was refused).")
    pending = param.Boolean(default=False, doc="Hosts are being asked for their key, or a key being recorded.")

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self._box = pn.Column(sizing_mode="stretch_width", margin=0)
        self._note = pn.pane.Alert("", alert_type="success", visible=False, sizing_mode="stretch_width", margin=(5, 10))
        self._layout = pn.Column(self._box, self._note, sizing_mode="stretch_width", margin=0)
        self._buttons: list[pn.widgets.Button] = []
        self._task: asyncio.Future | None = None
        self._watcher = state.param.watch(self._busy_changed, ["busy"])
        self._render()

    # -- model ---------------------------------------------------------------------------------------
    def _options(self) -> Any:
        from ..remote import SshOptions  # asyncssh is loaded when a remote host is first asked, not with the page

        return SshOptions.from_settings(self.state.settings.cluster)

    async def refresh(self, result: Any = None) -> list[Any]:
        """Ask each host INSTALL refused at its checks for the key it offers (a key exchange, nothing runs
        there); keep those unknown (trust is offered) or changed (refused)."""
        hosts = key_refused_hosts(result if result is not None else self.state.install_result)
        if not hosts or self.state.settings is None:
            self.offers = []
            return []
        from ..remote import HostKeyOffer, RemoteHostError, host_key_offer

        self.pending = True
        options = self._options()
        try:
            found = await asyncio.gather(*(host_key_offer(h, options) for h in hosts), return_exceptions=True)
        finally:
            self.pending = False
        for item in found:  # anything but a refused host key is said by the host table and the logs
            if isinstance(item, BaseException) and not isinstance(item, RemoteHostError):
                raise item
        self.offers = [o for o in found if isinstance(o, HostKeyOffer) and o.status != "known"]
        return self.offers

    async def trust(self, host: str) -> Any:
        """Record the key shown for ``host`` in known_hosts (refused when the host now offers another);
        the :class:`~agilab_panel.remote.HostKeyOffer` recorded, or None."""
        from ..remote import RemoteHostError, trust_host_key

        offer = next((o for o in self.offers if o.host == host and o.status == "unknown"), None)
        if offer is None:
            return None
        self.pending = True
        try:
            done = await trust_host_key(host, offer.fingerprint, self._options())
        except RemoteHostError as exc:
            self.message = f"Not recorded: {exc}"
            return None
        finally:
            self.pending = False
        self.offers = [o for o in self.offers if o.host != host]
        self.message = (f"Recorded the {done.key_type} key {done.fingerprint} of {host} in {done.known_hosts}: "
                        "run INSTALL again.")
        return done

    def _busy_changed(self, event: param.parameterized.Event) -> None:
        if event.new == "INSTALL":
            self.param.update(offers=[], message="")
        elif event.old == "INSTALL" and key_refused_hosts(self.state.install_result):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a script building the page): nothing to ask
                return
            self._task = loop.create_task(self.refresh(self.state.install_result))

    # -- view ----------------------------------------------------------------------------------------
    @param.depends("offers", "message", "pending", watch=True)
    def _render(self) -> None:
        rows: list[Any] = []
        self._buttons = []
        for offer in self.offers:
            if offer.status == "changed":
                rows.append(pn.pane.Alert(f"**Host key changed: refused.** {offer.message}", alert_type="danger",
                                          sizing_mode="stretch_width", margin=(5, 10)))
                continue
            text = (f"**`{offer.host}` is not a known host.** It offers the **{offer.key_type}** key "
                    f"`{offer.fingerprint}`, which is not in `{offer.known_hosts}`. Check this fingerprint with "
                    "the host's owner (`ssh-keygen -lf` on its host key) before trusting it; the key is then "
                    "recorded and INSTALL can run again.")
            button = pn.widgets.Button(label=f"Trust {offer.host}", color="warning", icon=icon("shield-check"),
                                       disabled=self.pending, margin=(0, 10, 5, 10))
            button.on_click(self._clicked(offer.host))
            self._buttons.append(button)
            rows.append(pn.pane.Alert(text, alert_type="warning", sizing_mode="stretch_width", margin=(5, 10, 0, 10)))
            rows.append(button)
        self._box.objects = rows
        self._note.object = self.message
        self._note.alert_type = "danger" if self.message.startswith("Not recorded") else "success"
        self._note.visible = bool(self.message)

    def _clicked(self, host: str) -> Any:
        async def click(_event: Any) -> None:
            await self.trust(host)

        return click

    def close(self) -> None:
        """Stop following the state (the section is being dropped)."""
        self.state.param.unwatch(self._watcher)
        if self._task is not None:
            self._task.cancel()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
