"""Remote hosts over SSH (engine side, no UI): connections with verified host keys, quoted commands,
host checks, and the install of worker environments on other machines."""
from __future__ import annotations

from .checks import HostFacts, check_host, check_hosts, probe
from .commands import command_line, run_captured, run_streamed
from .connect import connect, host_key_line
from .errors import RemoteHostError
from .options import SshOptions, check_remote_host, check_remote_path, check_user
from .status import check_remote_install, remote_install_record
from .trust import HostKeyOffer, host_key_offer, trust_host_key

__all__ = ["HostFacts", "HostKeyOffer", "RemoteHostError", "SshOptions", "check_host", "check_hosts",
           "check_remote_host", "check_remote_install", "check_remote_path", "check_user", "command_line", "connect",
           "host_key_line", "host_key_offer", "probe", "remote_install_record", "run_captured", "run_streamed",
           "trust_host_key"]
