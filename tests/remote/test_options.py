"""What runs on no host: the input checks and the quoting every remote command goes through."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from agilab_panel.remote import (RemoteHostError, SshOptions, check_remote_host, check_remote_path, check_user,
                                 command_line)


@pytest.mark.parametrize("host", ["a;b", "host name", "-oProxyCommand=x", "x$(id)", "user@host", "h`id`", ""])
def test_hostile_host_names_are_refused(host: str) -> None:
    with pytest.raises(RemoteHostError) as err:
        check_remote_host(host)
    assert err.value.kind == "refused-input"


@pytest.mark.parametrize("user", ["a;b", "-l", "root$(id)", "x y", "", "a" * 40])
def test_hostile_user_names_are_refused(user: str) -> None:
    with pytest.raises(RemoteHostError, match="not a plain login name"):
        check_user(user, "h")


@pytest.mark.parametrize("path", ["/data/$(id)", "/data;rm -rf ~", "`id`", "-rf", "/a\nb", "~/x", "/a|b"])
def test_paths_with_shell_metacharacters_are_refused(path: str) -> None:
    with pytest.raises(RemoteHostError, match="refused"):
        check_remote_path(path, "h")


def test_plain_names_pass_unchanged() -> None:
    assert check_remote_host("10.0.0.7") == "10.0.0.7" and check_remote_host("node-1.example.org")
    assert check_user("svc_agi.1", "h") == "svc_agi.1"
    assert check_remote_path("/srv/share with spaces/x-1", "h") == "/srv/share with spaces/x-1"


def test_commands_are_quoted_arguments() -> None:
    argv = ["python3", "-c", "print('a b'); import os", "/srv/a b", "$(id)"]
    line = command_line(argv)
    assert shlex.split(line) == argv  # the remote shell sees exactly these arguments
    with pytest.raises(TypeError):
        command_line("python3 -c 1")  # type: ignore[arg-type] - a string is not an argument list


def test_options_come_from_the_environment_and_never_show_more_than_the_key_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.write_text("Host x\n  User y\n")
    monkeypatch.setenv("AGILAB_SSH_KNOWN_HOSTS", str(tmp_path / "kh"))
    monkeypatch.setenv("AGILAB_SSH_CONFIG", str(config))
    options = SshOptions.from_env("alice", "/keys/id_ed25519")
    assert options.known_hosts == tmp_path / "kh" and options.config == config
    assert not options.trust_new_hosts  # trusting new hosts is opt-in
    assert "/keys/id_ed25519" in repr(options) and "password" not in repr(options).lower()
