"""Named argument sets of an app: ``[args.presets.<name>]`` in app_settings.toml.

A preset is a partial set of arguments (a tiny dataset beside the full one), plus optionally the data
folders it runs on (``data_in``, ``data_out``), so two sets never write into one output folder. The
command line takes ``--preset NAME``; the page loads a preset into ``[args]``. Each value is checked
against the args class like ``[args]`` itself, and a bad one names the file and its line.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["PRESETS", "DATA_KEYS", "check_presets", "split_preset"]

PRESETS = "presets"  # the sub-table of [args] holding the sets: never an argument itself
DATA_KEYS = ("data_in", "data_out")  # what a preset may set besides arguments


def check_presets(presets: Any, check_arg: Any) -> dict[str, dict[str, Any]]:
    """The presets as plain dicts, after ``check_arg(key, value)`` accepted every argument of each.

    Raises ``ValueError`` with ``.keys`` (the TOML key path of the bad value, for its line) on the first
    value that is not right.
    """
    if not isinstance(presets, Mapping):
        raise _error(f"[args.{PRESETS}] must be a table of named argument sets", (PRESETS,))
    checked: dict[str, dict[str, Any]] = {}
    for name, values in presets.items():
        if not isinstance(values, Mapping):
            raise _error(f"[args.{PRESETS}.{name}] must be a table of arguments, not {values!r}", (PRESETS, name))
        plain = {str(k): (v.unwrap() if hasattr(v, "unwrap") else v) for k, v in values.items()}
        for key, value in plain.items():
            if key in DATA_KEYS:
                if not isinstance(value, str) or not value:
                    raise _error(f"[args.{PRESETS}.{name}] {key} must be a folder (text), not {value!r}",
                                 (PRESETS, name, key))
                continue
            try:
                check_arg(key, value)
            except (ValueError, TypeError) as exc:
                raise _error(f"[args.{PRESETS}.{name}] {exc}", (PRESETS, name, key)) from exc
        checked[str(name)] = plain
    return checked


def split_preset(preset: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(arguments, data folders) of one preset."""
    return ({k: v for k, v in preset.items() if k not in DATA_KEYS},
            {k: v for k, v in preset.items() if k in DATA_KEYS})


def _error(message: str, keys: tuple[str, ...]) -> ValueError:
    error = ValueError(message)
    error.keys = ("args", *keys)  # type: ignore[attr-defined]
    return error
