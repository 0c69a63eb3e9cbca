"""``[service]`` of app_settings.toml: how a service runs, with the defaults of SPEC §8.

The gate's thresholds stay where the reference keeps them, ``[cluster.service_health]``
(:class:`~agilab_panel.settings.ServiceHealthSettings`); this table holds the rest: timing,
retention and retries. Values given to ``AGI.serve`` override the file for that call only.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import param

from ..settings import AppSettings, SettingsFileError, check_number
from ..toml_lines import line_of
from .queue import Retention

__all__ = ["ServiceSettings", "SERVICE_KEYS", "load_service_settings", "save_service_settings", "with_overrides",
           "retention_policy"]

HOUR = 3600.0


class ServiceSettings(param.Parameterized):
    """How the loops run, how long their files are kept, and how tasks of dead loops are retried."""

    poll_interval = param.Number(1.0, bounds=(0.01, 60), doc="Seconds between heartbeats (and between polls "
                                 "where a file watch is not available).")
    heartbeat_timeout = param.Number(10.0, bounds=(0.1, None), doc="A heartbeat older than this is stale.")
    stop_timeout = param.Number(30.0, bounds=(0.5, None), doc="STOP waits this long for running tasks, then kills.")
    health_output_path = param.String("", doc="Where health.json goes; relative paths stay inside the share "
                                      "(empty: service/<app>/health.json).")
    cleanup_done_ttl_sec = param.Number(168 * HOUR, bounds=(0, None), doc="Age after which done tasks are deleted.")
    cleanup_failed_ttl_sec = param.Number(336 * HOUR, bounds=(0, None), doc="Age after which failed tasks are deleted.")
    cleanup_heartbeat_ttl_sec = param.Number(24 * HOUR, bounds=(0, None), doc="Age after which heartbeats are deleted.")
    cleanup_done_max_files = param.Integer(2000, bounds=(0, None), doc="Done tasks kept at most (0: no limit).")
    cleanup_failed_max_files = param.Integer(2000, bounds=(0, None), doc="Failed tasks kept at most (0: no limit).")
    cleanup_heartbeat_max_files = param.Integer(1000, bounds=(0, None), doc="Heartbeat files kept at most (0: no limit).")
    max_retries = param.Integer(2, bounds=(0, None), doc="Times a task of a dead loop goes back to pending.")
    restart_window_sec = param.Number(HOUR, bounds=(1, None), doc="Restart rate is measured over this window.")


SERVICE_KEYS = tuple(k for k in ServiceSettings.param if k != "name")


def _set(target: ServiceSettings, key: str, value: Any) -> None:
    """Set one field; a boolean where a number goes, NaN and unknown keys are refused (param lets them by)."""
    if key not in SERVICE_KEYS:
        raise ValueError(f"unknown service setting {key!r} (known: {', '.join(SERVICE_KEYS)})")
    check_number(target, key, value)
    try:
        setattr(target, key, value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"service setting {key!r}: {exc}") from exc


def load_service_settings(settings: AppSettings) -> ServiceSettings:
    """``[service]`` of the app's settings file (defaults for what it does not say)."""
    text, doc = settings.store.load()
    table = doc.get("service", {})
    if not isinstance(table, Mapping):
        raise SettingsFileError(settings.store.path, f"service must be a table ([service]), not {table!r}")
    loaded = ServiceSettings(name="service")
    for key, value in table.items():
        try:
            _set(loaded, str(key), value.unwrap() if hasattr(value, "unwrap") else value)
        except ValueError as exc:
            raise SettingsFileError(settings.store.path, f"[service] {exc}", line_of(text, ("service", str(key)))) from exc
    return loaded


def save_service_settings(settings: AppSettings, values: ServiceSettings, *names: str) -> None:
    """Persist the named fields (all when none are named) into ``[service]``, keeping the rest of the file."""
    keys = names or SERVICE_KEYS
    settings.store.update({("service", k): getattr(values, k) for k in keys})


def with_overrides(base: ServiceSettings, overrides: Mapping[str, Any]) -> ServiceSettings:
    """A copy of ``base`` with the non-None ``overrides``; a bad value is refused before anything runs."""
    merged = ServiceSettings(name="service", **{k: getattr(base, k) for k in SERVICE_KEYS})
    for key, value in overrides.items():
        if value is not None:
            _set(merged, key, value)
    return merged


def retention_policy(values: ServiceSettings) -> dict[str, Retention]:
    return {
        "done": Retention(values.cleanup_done_ttl_sec, values.cleanup_done_max_files),
        "failed": Retention(values.cleanup_failed_ttl_sec, values.cleanup_failed_max_files),
        "heartbeats": Retention(values.cleanup_heartbeat_ttl_sec, values.cleanup_heartbeat_max_files),
    }
