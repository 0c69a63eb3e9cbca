"""Settings: the TOML store behind the param models of :mod:`.settings_models` (SPEC §5).

The store keeps the user's comments and layout (tomlkit), writes atomically, merges only the leaves a
caller changed under a file lock (two writers lose nothing), and never overwrites a file it could not
parse: whatever is wrong (bytes, syntax, duplicate keys, table types, schema, a value), the error names
the file and line, and :meth:`SettingsStore.reseed` keeps the broken copy.
"""
from __future__ import annotations

import copy
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tomlkit
from filelock import FileLock
from tomlkit.exceptions import ParseError, TOMLKitError

from .fsutil import atomic_write_text, keep_copy
from .hosts import validate_workers
from .presets import PRESETS, check_presets
from .settings_models import (ClusterSettings, HostPort, ServiceHealthSettings, UnknownArgumentError,
                              WorkerMap, _plain, _set_checked, args_to_dict, check_number, make_args)
from .toml_lines import decode_error_line, line_of

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "SettingsFileError",
    "UnknownArgumentError",
    "WorkerMap",
    "HostPort",
    "ClusterSettings",
    "ServiceHealthSettings",
    "SettingsStore",
    "AppSettings",
    "args_to_dict",
    "make_args",
    "check_number",
    "atomic_write_text",
]

SCHEMA = "agilab.app_settings.v1"
SCHEMA_VERSION = 1
MAX_SETTINGS_BYTES = 5 * 1024 * 1024  # far above any real settings file; larger is refused unread
# The tables this schema knows, and where each must be a table.
_TABLES = (("__meta__",), ("args",), ("cluster",), ("cluster", "workers"), ("cluster", "service_health"), ("service",),
           ("args", PRESETS))
MERGED_NOTE = "added from the app's app_settings.toml"  # on each line merge_seed adds


class SettingsFileError(Exception):
    """A settings file that cannot be used; ``line`` is 1-based when known."""

    def __init__(self, path: Path, message: str, line: int | None = None, col: int | None = None) -> None:
        self.path, self.line, self.col = Path(path), line, col
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


# -- the file --------------------------------------------------------------------------------------
class SettingsStore:
    """The per-user ``app_settings.toml`` of one app, seeded from the app's versioned copy."""

    def __init__(self, path: Path, seed: Path) -> None:
        self.path, self.seed = Path(path), Path(seed)
        # beside the file itself, so every path (or symlink) leading to one file takes the same lock
        self._lock = FileLock(os.path.realpath(self.path) + ".lock", timeout=30)

    def ensure_seeded(self) -> None:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                if not self.path.exists():
                    try:
                        atomic_write_text(self.path, self.seed.read_text(encoding="utf-8"))
                    except OSError as exc:  # a symlink loop, a read-only folder: name the file, not a traceback
                        raise SettingsFileError(self.path, f"cannot be created: {exc.strerror or exc}") from exc

    def _error(self, text: str, keys: tuple[str, ...], message: str) -> SettingsFileError:
        return SettingsFileError(self.path, message, line_of(text, keys))

    def _read_text(self) -> str:
        """The file as text; one too large, not a file or not UTF-8 is refused before any parsing."""
        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):  # a folder, or a FIFO that would block the read
                raise SettingsFileError(self.path, "not a regular file")
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                data = handle.read(MAX_SETTINGS_BYTES + 1) if size <= MAX_SETTINGS_BYTES else b""
        except OSError as exc:
            raise SettingsFileError(self.path, f"cannot be read: {exc.strerror or exc}") from exc
        if size > MAX_SETTINGS_BYTES or len(data) > MAX_SETTINGS_BYTES:
            raise SettingsFileError(self.path, f"{max(size, len(data)):,} bytes: larger than the "
                                    f"{MAX_SETTINGS_BYTES // 2**20} MB a settings file may be; not read")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise SettingsFileError(self.path, f"not UTF-8 text (byte 0x{data[exc.start]:02x}): binary or corrupted content",
                                    line) from exc

    def _parse(self, text: str) -> tomlkit.TOMLDocument:
        """The document, after the strict parser and the schema's shape both accept it."""
        try:
            plain = tomllib.loads(text)  # strict: duplicate keys and tables, control characters
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            raise SettingsFileError(self.path, f"not valid TOML: {message.split(' (at ')[0]}",
                                    decode_error_line(message)) from exc
        try:
            doc = tomlkit.parse(text)
        except ParseError as exc:
            raise SettingsFileError(self.path, f"not valid TOML: {exc.args[0] if exc.args else exc}", exc.line, exc.col) from exc
        except TOMLKitError as exc:
            raise SettingsFileError(self.path, f"not valid TOML: {exc}", getattr(exc, "line", None)) from exc
        self._check_shape(text, plain)
        return doc

    def _check_shape(self, text: str, plain: Mapping[str, Any]) -> None:
        for keys in _TABLES:
            value: Any = plain
            for key in keys:
                value = value.get(key) if isinstance(value, Mapping) else None
            if value is not None and not isinstance(value, Mapping):
                name = ".".join(keys)
                raise self._error(text, keys, f"{name} must be a table ([{name}]), not {type(value).__name__} {value!r}")
        meta = plain.get("__meta__", {})
        schema = meta.get("schema", SCHEMA)
        if schema != SCHEMA:
            raise self._error(text, ("__meta__", "schema"),
                              f"__meta__.schema {schema!r} is not {SCHEMA!r}: not an agilab app settings file")
        version = meta.get("version", SCHEMA_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise self._error(text, ("__meta__", "version"), f"__meta__.version must be a positive integer, got {version!r}")
        if version > SCHEMA_VERSION:
            raise self._error(
                text, ("__meta__", "version"),
                f"__meta__.version {version!r} is newer than this agilab-panel understands ({SCHEMA_VERSION}); upgrade agilab-panel",
            )

    def load(self) -> tuple[str, tomlkit.TOMLDocument]:
        """The text (to name lines in later errors) and the document; the file is seeded first if missing."""
        self.ensure_seeded()
        text = self._read_text()
        return text, self._parse(text)

    def read(self) -> tomlkit.TOMLDocument:
        return self.load()[1]

    def update(self, changes: Mapping[tuple[str, ...], Any]) -> tomlkit.TOMLDocument:
        """Set each ``(table, ..., key) -> value`` leaf, re-reading the file under the lock first."""
        self.ensure_seeded()
        with self._lock:
            doc = self._parse(self._read_text())
            for keys, value in changes.items():
                table: Any = doc
                for key in keys[:-1]:
                    if key not in table:
                        table[key] = tomlkit.table()
                    table = table[key]
                leaf = keys[-1]
                if value is None:
                    if leaf in table:
                        del table[leaf]
                elif isinstance(value, Mapping):
                    inline = tomlkit.inline_table() if not isinstance(table.get(leaf), tomlkit.items.Table) else tomlkit.table()
                    inline.update(dict(value))
                    table[leaf] = inline
                elif leaf not in table or _plain(table[leaf]) != value:
                    table[leaf] = value
            atomic_write_text(self.path, tomlkit.dumps(doc))
            return doc

    def replace_table(self, keys: tuple[str, ...], values: Mapping[str, Any]) -> tomlkit.TOMLDocument:
        """Make the table at ``keys`` hold exactly ``values`` (for maps such as the workers)."""
        self.ensure_seeded()
        with self._lock:
            doc = self._parse(self._read_text())
            table: Any = doc
            for key in keys[:-1]:
                if key not in table:
                    table[key] = tomlkit.table()
                table = table[key]
            current = table.get(keys[-1])
            if current is None:
                current = tomlkit.table()
                table[keys[-1]] = current
            for old in [k for k in current if k not in values]:
                del current[old]
            for k, v in values.items():
                if k not in current or _plain(current[k]) != v:
                    current[k] = v
            atomic_write_text(self.path, tomlkit.dumps(doc))
            return doc

    def merge_seed(self, accept: Callable[[dict[str, Any]], Any]) -> list[str]:
        """Add the ``[args]`` keys and argument sets the app's own copy has and this file lacks, keeping
        every value this file has; each added line says where it came from. Returns the keys added
        (``args.size``, ``args.presets.tiny``). ``accept(args)`` checks the merged ``[args]`` first: when
        it raises, or this file cannot be read, nothing is written."""
        try:
            seed = tomllib.loads(self.seed.read_text(encoding="utf-8")).get("args")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return []  # the app's copy is check-app's to report
        if not isinstance(seed, Mapping) or not self.path.exists():
            return []  # nothing to merge, or seeded whole on first load
        added: list[str] = []
        with self._lock:
            try:
                doc = self._parse(self._read_text())
            except SettingsFileError:
                return []
            _merge({"args": seed}, doc, (), added)
            if not added:
                return []
            text = tomlkit.dumps(doc)
            try:
                accept(tomllib.loads(text).get("args", {}))
            except (ValueError, TypeError):
                return []
            atomic_write_text(self.path, text)
        return added

    def reseed(self) -> Path | None:
        """Start again from the app's copy; a broken file is kept as ``.broken-<time>`` beside it."""
        backup = None
        with self._lock:
            if self.path.exists():
                backup = keep_copy(self.path)  # never over an earlier backup
            atomic_write_text(self.path, self.seed.read_text(encoding="utf-8"))
        return backup


def _merge(seed: Mapping[str, Any], table: Any, path: tuple[str, ...], added: list[str]) -> None:
    """Copy into ``table`` the keys of ``seed`` it lacks, recursively (see :meth:`SettingsStore.merge_seed`)."""
    for key, value in seed.items():
        keys = (*path, key)
        if isinstance(value, Mapping):
            if key not in table:  # a whole new table (an argument set): said once, by its name
                table[key] = tomlkit.table()
                _merge(value, table[key], keys, [])
                table[key].add(tomlkit.nl())
                added.append(".".join(keys))
            elif isinstance(table[key], Mapping):  # else a shape error, reported when the file is loaded
                _merge(value, table[key], keys, added)
        elif key not in table:
            item = tomlkit.item(value)
            item.comment(MERGED_NOTE)
            table[key] = item
            added.append(".".join(keys))


_CLUSTER_KEYS = [k for k in ClusterSettings.param if k not in ("name", "workers")]
_HEALTH_KEYS = [k for k in ServiceHealthSettings.param if k != "name"]


def _known_key(known: list[str]) -> Callable[[str, Any], None]:
    """A check that a key is one of ``known``: a misspelt setting is an error, not silently ignored."""
    def check(key: str, _value: Any) -> None:
        if key not in known:
            raise ValueError(f"unknown setting {key!r} (known: {', '.join(known)})")
    return check


class AppSettings:
    """The models of one app's settings, loaded from and saved to its :class:`SettingsStore`."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.store = SettingsStore(env.settings_path, env.settings_seed_path)
        self.args_class = env.spec.args_class()
        self.cluster = ClusterSettings(name="cluster")
        self.service_health = ServiceHealthSettings(name="service_health")
        self.args = self.args_class()
        self.presets: dict[str, dict[str, Any]] = {}  # [args.presets.<name>]: named argument sets
        self._saved: dict[tuple[str, ...], Any] = {}
        self.reload()
        self.merged = self._merge_app_copy()  # keys the app's copy brought in since this file was made

    def _merge_app_copy(self) -> list[str]:
        """Merge new arguments and argument sets of the app's copy into a file known to be usable whole."""
        from .service.config import load_service_settings  # the service reads its table from this file

        try:
            load_service_settings(self)
        except SettingsFileError:
            return []  # refused as it is where it is used, and left as it is

        def accept(args: dict[str, Any]) -> None:
            values = dict(args)
            presets = values.pop(PRESETS, {})
            make_args(self.args_class, values, self.env.app)
            check_presets(presets, lambda k, v: make_args(self.args_class, {k: v}, self.env.app))

        added = self.store.merge_seed(accept)
        if added:
            self.reload()
        return added

    def _leaves(self) -> dict[tuple[str, ...], Any]:
        """Every leaf the models hold, keyed like :meth:`SettingsStore.update`."""
        leaves: dict[tuple[str, ...], Any] = {("cluster", k): getattr(self.cluster, k) for k in _CLUSTER_KEYS}
        leaves[("cluster", "workers")] = dict(self.cluster.workers)
        leaves.update({("cluster", "service_health", k): getattr(self.service_health, k) for k in _HEALTH_KEYS})
        leaves.update({("args", k): v for k, v in args_to_dict(self.args).items()})
        return copy.deepcopy(leaves)

    def _changed(self, keys: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
        """The leaves among ``keys`` that differ from what was last loaded or saved."""
        current = self._leaves()
        return [k for k in keys if k not in self._saved or current.get(k) != self._saved[k]]

    def _mark_saved(self, keys: list[tuple[str, ...]]) -> None:
        current = self._leaves()
        for k in keys:
            self._saved[k] = current.get(k)

    def _checked(self, text: str, table: tuple[str, ...], values: Mapping[str, Any],
                 check: Callable[[str, Any], None]) -> None:
        """Run ``check`` on each value; the first refusal names the file, the line and the key."""
        for key, value in values.items():
            try:
                check(key, value)
            except (ValueError, TypeError) as exc:
                raise SettingsFileError(self.store.path, f"[{'.'.join(table)}] {exc}", line_of(text, (*table, key))) from exc

    def reload(self, keep_unsaved: bool = False) -> None:
        """Read the file into the models; a bad value names the file, the line and the key.

        With ``keep_unsaved`` (taking in what another session saved), a value set here and not saved yet
        stays, unless the file changed it too: a saved value wins over one never saved.
        """
        text, doc = self.store.load()
        cluster = dict(doc.get("cluster", {}))
        health = dict(cluster.pop("service_health", {}) or {})
        self._checked(text, ("cluster",), cluster, _known_key(_CLUSTER_KEYS + ["workers"]))
        self._checked(text, ("cluster", "service_health"), health, _known_key(_HEALTH_KEYS))
        values = {k: _plain(cluster[k]) for k in _CLUSTER_KEYS if k in cluster}
        scratch = ClusterSettings()
        self._checked(text, ("cluster",), values, lambda k, v: _set_checked(scratch, k, v))
        if "workers" in cluster:
            workers = {str(k): _plain(v) for k, v in dict(cluster["workers"]).items()}
            self._checked(text, ("cluster", "workers"), workers, lambda k, v: validate_workers({k: v}))
            self._checked(text, ("cluster",), {"workers": workers}, lambda k, v: setattr(scratch, k, v))
            values["workers"] = workers
        health_values = {k: _plain(v) for k, v in health.items() if k in _HEALTH_KEYS}
        scratch_health = ServiceHealthSettings()
        self._checked(text, ("cluster", "service_health"), health_values, lambda k, v: _set_checked(scratch_health, k, v))
        args = {k: _plain(v) for k, v in dict(doc.get("args", {})).items()}
        presets = args.pop(PRESETS, {})
        self._checked(text, ("args",), args, lambda k, v: make_args(self.args_class, {k: v}, self.env.app))
        loaded = args_to_dict(make_args(self.args_class, args, self.env.app))
        try:
            checked_presets = check_presets(presets, lambda k, v: make_args(self.args_class, {k: v}, self.env.app))
        except ValueError as exc:
            raise SettingsFileError(self.store.path, str(exc), line_of(text, exc.keys)) from exc  # type: ignore[attr-defined]
        kept = self._unsaved_kept(values, health_values, loaded) if keep_unsaved else {}
        # every value was checked above: the models change together, or not at all
        self.cluster.param.update(**{k: v for k, v in values.items() if ("cluster", k) not in kept})
        self.service_health.param.update(
            **{k: v for k, v in health_values.items() if ("cluster", "service_health", k) not in kept})
        self.args.param.update(**{k: v for k, v in loaded.items() if ("args", k) not in kept})
        self._saved = {**self._leaves(), **kept}  # a kept value still differs from the file: saving writes it
        self.presets = checked_presets

    def _unsaved_kept(self, values: Mapping[str, Any], health: Mapping[str, Any],
                      args: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
        """The leaves set here and not saved that the file did not change either, with the file's value."""
        read = {**{("cluster", k): v for k, v in values.items()},
                **{("cluster", "service_health", k): v for k, v in health.items()},
                **{("args", k): v for k, v in args.items()}}
        kept = {}
        for key, value in self._leaves().items():
            before = self._saved.get(key, value)
            if value != before and read.get(key, before) == before:
                kept[key] = before
        return kept

    def save_cluster(self, *names: str) -> None:
        """Persist the named cluster fields (when none are named: those changed since loaded)."""
        keys = [("cluster", n) for n in names] or self._changed([("cluster", n) for n in (*_CLUSTER_KEYS, "workers")])
        leaves = {k: getattr(self.cluster, k[1]) for k in keys if k[1] != "workers"}
        if leaves:
            self.store.update(leaves)
        if ("cluster", "workers") in keys:
            self.store.replace_table(("cluster", "workers"), dict(self.cluster.workers))
        self._mark_saved(keys)

    def save_service_health(self, *names: str) -> None:
        """Persist the named health-gate fields (when none are named: those changed since loaded)."""
        keys = [("cluster", "service_health", n) for n in names] or self._changed(
            [("cluster", "service_health", n) for n in _HEALTH_KEYS]
        )
        if keys:
            self.store.update({k: getattr(self.service_health, k[2]) for k in keys})
        self._mark_saved(keys)

    def preset(self, name: str) -> dict[str, Any]:
        """The argument set ``name`` (arguments, and ``data_in``/``data_out`` when it names them)."""
        if name not in self.presets:
            known = ", ".join(sorted(self.presets)) or "none"
            raise ValueError(f"app {self.env.app!r} has no argument set {name!r} ([args.presets]: {known})")
        return dict(self.presets[name])

    def save_args(self, values: Mapping[str, Any] | None = None) -> None:
        """Validate and persist ``values`` (only those: the file keeps every other argument as it has it);
        without ``values``, the ``[args]`` of the current args object that changed since loaded or saved."""
        if values is not None:
            checked = args_to_dict(make_args(self.args_class, values, self.env.app))  # refuses bad values first
            # update the same object, so whatever watches the args (forms, snippets) keeps following it
            self.args.param.update(**{k: checked[k] for k in values})
            keys = [("args", k) for k in values]
        else:
            keys = self._changed([("args", k) for k in args_to_dict(self.args)])
        if keys:
            current = self._leaves()
            self.store.update({k: current[k] for k in keys})
        self._mark_saved(keys)

    @property
    def args_dict(self) -> dict[str, Any]:
        return args_to_dict(self.args)
