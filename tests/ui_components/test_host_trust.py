"""The Trust view under INSTALL: which hosts are asked for their key, a button for an unknown key only,
the refusal (and no button) for a changed one. The keys recorded by the button are tested against real
sshd hosts in tests/remote/test_trust.py and, clicked in Chromium, in tests/ui/test_remote_hosts.py."""
from __future__ import annotations

from pathlib import Path

from agilab_panel.remote import HostKeyOffer
from agilab_panel.results import HostInstall, InstallResult, StepResult
from agilab_panel.ui.host_trust import HostTrust, key_refused_hosts
from agilab_panel.ui.state import OrchestrateState

KNOWN = Path("/nonexistent/known_hosts")


def _result() -> InstallResult:
    failed_ssh = [StepResult("ssh", False, 0.1, detail="host key unknown")]
    return InstallResult("minimal_app", 4, {
        "127.0.0.1": HostInstall("127.0.0.1", False, "", [StepResult("venv", False, 1.0)], "venv failed"),
        "192.0.2.10": HostInstall("192.0.2.10", False, "", failed_ssh, "host key unknown"),
        "192.0.2.11": HostInstall("192.0.2.11", False, "", [StepResult("ssh", True, 0.1),
                                                            StepResult("app", False, 2.0)], "step 'app' failed"),
        "192.0.2.12": HostInstall("192.0.2.12", True, "", [StepResult("ssh", True, 0.1)]),
    }, 3.0)


def test_only_remote_hosts_refused_at_their_checks_are_asked_for_their_key() -> None:
    assert key_refused_hosts(_result()) == ["192.0.2.10"]  # not this machine, not a later step, not a success
    assert key_refused_hosts(None) == []


def test_a_trust_button_for_an_unknown_key_never_for_a_changed_one() -> None:
    section = HostTrust(OrchestrateState("minimal_app"))
    section.offers = [HostKeyOffer("192.0.2.10", 22, "ssh-ed25519", "SHA256:new", "unknown", KNOWN),
                      HostKeyOffer("192.0.2.11", 22, "ssh-ed25519", "SHA256:other", "changed", KNOWN)]
    assert [b.label for b in section._buttons] == ["Trust 192.0.2.10"]
    assert section._buttons[0].icon.startswith("<svg")
    texts = [getattr(o, "object", "") for o in section._box.objects]
    assert any("SHA256:new" in t and "ssh-ed25519" in t for t in texts)
    assert any(t.startswith("**Host key changed: refused.**") and "SHA256:other" in t for t in texts)
    section.pending = True  # asking the hosts, or recording a key: no second click meanwhile
    assert all(b.disabled for b in section._buttons)
    section.close()
