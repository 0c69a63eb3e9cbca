"""The param models the dashboard binds to (``[cluster]``, ``[cluster.service_health]``, an app's args),
with parameters that refuse bad input at the field: a widget given a wrong value never reaches a file."""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import param

from .hosts import parse_host_port, validate_workers
from .modes import benchmark_modes, mode_from_toggles, mode_label
from .paths import check_worker_path

__all__ = ["UnknownArgumentError", "WorkerMap", "HostPort", "Count", "Amount", "WorkerPath", "ClusterSettings",
           "ServiceHealthSettings", "args_to_dict", "make_args", "check_number"]


class UnknownArgumentError(ValueError):
    """An argument the app does not declare (renamed or removed): stale snippets fail with this."""

    def __init__(self, app: str, key: str, known: list[str]) -> None:
        self.app, self.key, self.known = app, key, known
        super().__init__(
            f"app {app!r} has no argument {key!r} (it was renamed or removed); "
            f"known arguments: {', '.join(known) or 'none'}. Regenerate the snippet."
        )


class WorkerMap(param.Dict):
    """``{"host": slots}``: hosts are IPv4, IPv6 or DNS names; slots positive ints."""

    def _validate_value(self, val, allow_None):  # noqa: ANN001 - param's signature
        super()._validate_value(val, allow_None)
        if val is None and allow_None:
            return
        validate_workers(val)


class HostPort(param.String):
    """``host[:port]`` (``[v6]:port`` for IPv6); empty means "start a local scheduler"."""

    def _validate_value(self, val, allow_None):  # noqa: ANN001
        super()._validate_value(val, allow_None)
        if val:
            parse_host_port(val)


class Count(param.Integer):
    """An integer field that refuses a boolean (``True`` is an int to Python, not a count to a user)."""

    def _validate_value(self, val, allow_None):  # noqa: ANN001
        if isinstance(val, bool):
            raise ValueError(f"{self.name!r} must be an integer, not the boolean {val!r}")
        super()._validate_value(val, allow_None)


class Amount(param.Number):
    """A number field that refuses a boolean and NaN (which passes any bounds)."""

    def _validate_value(self, val, allow_None):  # noqa: ANN001
        if isinstance(val, bool) or (isinstance(val, float) and math.isnan(val)):
            raise ValueError(f"{self.name!r} must be a number, not {val!r}")
        super()._validate_value(val, allow_None)


class WorkerPath(param.String):
    """A folder as the workers see it (absolute, or inside their share); empty means the share."""

    def _validate_value(self, val, allow_None):  # noqa: ANN001
        super()._validate_value(val, allow_None)
        if val:
            check_worker_path(val)


class ClusterSettings(param.Parameterized):
    """``[cluster]``: where and how runs execute."""

    cluster_enabled = param.Boolean(False, doc="Run through a Dask scheduler and distributed workers.")
    pool = param.Boolean(False, doc="Use the worker-pool path (process or thread backend).")
    cython = param.Boolean(False, doc="Use the compiled (Cython) worker path built at install.")
    rapids = param.Boolean(False, doc="Use the RAPIDS (cuDF) path where the host has a GPU.")
    verbose = Count(1, bounds=(0, 3), doc="Verbosity of logs and of the generated AgiEnv.")
    scheduler = HostPort("", doc="Dask scheduler host[:port]; empty starts one on this machine.")
    user = param.String("", doc="SSH user for remote hosts (never a password).")
    ssh_key_path = param.String("", doc="SSH private key for remote hosts.")
    ssh_trust_new_hosts = param.Boolean(False, doc="Trust a remote host never seen before on first use (its key "
                                        "is recorded in known_hosts); a changed host key is always refused.")
    tls_ca_file = param.String("", doc="TLS CA certificate (PEM file) of clusters with remote hosts; empty: "
                               "temporary certificates made for each cluster.")
    tls_cert_file = param.String("", doc="TLS certificate (PEM file) every part of such a cluster presents.")
    tls_key_file = param.String("", doc="Private key (PEM file) of tls_cert_file.")
    workers = WorkerMap({"127.0.0.1": 2}, doc='Worker map {"host": slots}.')
    workers_data_path = WorkerPath("", doc="Data folder as seen from the workers (empty: the share).")

    @property
    def mode(self) -> int:
        return mode_from_toggles(self.pool, self.cython, self.cluster_enabled, self.rapids)

    @property
    def mode_hint(self) -> str:
        modes = benchmark_modes(self.mode)
        return f"Run mode {mode_label(self.mode)} · benchmark modes: {', '.join(map(str, modes))}"


class ServiceHealthSettings(param.Parameterized):
    """``[cluster.service_health]``: the health gate's thresholds."""

    allow_idle = param.Boolean(False, doc="An idle service passes the gate.")
    max_unhealthy = Count(0, bounds=(0, None), doc="Unhealthy workers tolerated.")
    max_restart_rate = Amount(0.25, bounds=(0, None), doc="Restarts per worker tolerated over the window.")


# -- args ------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if hasattr(value, "unwrap"):
        value = value.unwrap()
    if isinstance(value, Path):
        return str(value)
    return value


def args_to_dict(args: param.Parameterized) -> dict[str, Any]:
    """The declared values of an args object (``name`` excluded)."""
    return {k: _plain(v) for k, v in args.param.values().items() if k != "name"}


def check_number(owner: param.Parameterized | type[param.Parameterized], key: str, value: Any) -> None:
    """Refuse what ``param`` lets through a number field: a boolean (``True`` is an int) and NaN (within any bounds)."""
    parameter = owner.param[key]
    if not isinstance(parameter, param.Number) or isinstance(parameter, param.Date):
        return
    if isinstance(value, bool):
        raise ValueError(f"{key!r} must be a number, not the boolean {value!r}")
    if isinstance(value, float) and math.isnan(value):
        raise ValueError(f"{key!r} must be a number, not NaN")


def _set_checked(obj: param.Parameterized, key: str, value: Any) -> None:
    check_number(obj, key, value)
    setattr(obj, key, value)


def make_args(args_class: type[param.Parameterized], values: Mapping[str, Any], app: str = "") -> param.Parameterized:
    """An args object from ``values``; unknown keys raise :class:`UnknownArgumentError`."""
    known = [k for k in args_class.param if k != "name"]
    for key in values:
        if key not in known:
            raise UnknownArgumentError(app or args_class.__name__, key, known)
    obj = args_class()
    for key, value in values.items():
        try:
            _set_checked(obj, key, _plain(value))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"argument {key!r}: {exc}") from exc
    return obj
