"""AgiEnv: one app resolved, with every path of SPEC §3.

Environment variables override defaults so tests and operators can point each piece elsewhere; the
per-user ``<home>/.env`` is read once, and the process environment always wins over it.
"""
from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

from .apps import AppError, AppSpec, apps_paths_from_environment, discover_apps, load_app

__all__ = ["AgiEnv"]


def _env_value(name: str, dotenv: dict[str, str | None]) -> str | None:
    value = os.environ.get(name)
    if value:
        return value
    value = dotenv.get(name)
    return value or None


class AgiEnv:
    """Resolve ``app`` among the built-in apps and ``apps_path`` and expose its paths."""

    def __init__(self, app: str, apps_path: str | os.PathLike | list | None = None, verbose: int = 1) -> None:
        if isinstance(verbose, bool) or not isinstance(verbose, int) or not 0 <= verbose <= 3:
            raise ValueError(f"verbose must be an int 0..3, got {verbose!r}")
        self.verbose = verbose
        if apps_path is None:
            self.apps_paths = apps_paths_from_environment()
        elif isinstance(apps_path, (list, tuple)):
            self.apps_paths = [Path(p) for p in apps_path]
        else:
            self.apps_paths = [Path(apps_path)]
        home_default = Path(os.environ.get("AGILAB_HOME") or Path.home() / ".agilab").expanduser()
        dotenv = dotenv_values(home_default / ".env") if (home_default / ".env").is_file() else {}
        self.home = Path(_env_value("AGILAB_HOME", dotenv) or home_default).expanduser()

        apps = discover_apps(self.apps_paths)
        candidate = Path(app).expanduser()
        if candidate.is_dir() and (candidate / "pyproject.toml").is_file():
            self.spec: AppSpec = load_app(candidate)
        elif app in apps:
            self.spec = load_app(apps[app])
        else:
            known = ", ".join(sorted(apps)) or "none"
            raise AppError(f"unknown app {app!r} (known apps: {known})")
        self.app = self.spec.name
        self.module = self.spec.module

        self.share = Path(_env_value("AGI_CLUSTER_SHARE", dotenv) or self.home / "share").expanduser()
        self.export_root = Path(_env_value("AGILAB_EXPORT_ABS", dotenv) or self.home / "export").expanduser()
        log_root = _env_value("AGILAB_LOG_ABS", dotenv)
        self.log_root = Path(log_root).expanduser() if log_root else Path.home() / "log" / "execute"

    # -- paths ---------------------------------------------------------------------------------
    @property
    def app_path(self) -> Path:
        return self.spec.path

    @property
    def user_app_dir(self) -> Path:
        return self.home / "apps" / self.app

    @property
    def settings_path(self) -> Path:
        return self.user_app_dir / "app_settings.toml"

    @property
    def settings_seed_path(self) -> Path:
        return self.spec.settings_seed

    @property
    def benchmark_path(self) -> Path:
        return self.user_app_dir / "benchmark.json"

    @property
    def last_run_path(self) -> Path:
        return self.user_app_dir / "last_run.json"

    @property
    def plan_path(self) -> Path:
        return self.user_app_dir / "distribution_tree.json"

    @property
    def wenv_root(self) -> Path:
        return self.home / "wenv" / self.app

    def wenv_path(self, host: str = "localhost") -> Path:
        """Worker environment folder of one host (local hosts share ``localhost``)."""
        from .hosts import is_local_host

        key = "localhost" if is_local_host(host) else host.replace(":", "_").strip("[]")
        return self.wenv_root / key

    @property
    def log_dir(self) -> Path:
        return self.log_root / self.app

    @property
    def export_dir(self) -> Path:
        return self.export_root / self.module

    @property
    def export_csv(self) -> Path:
        return self.export_dir / "export.csv"

    def resolve_data_path(self, value: str | os.PathLike | None, default: str, what: str = "data path") -> Path:
        """A data folder inside the cluster share (relative paths start there), so manager and workers
        agree on it; one leading elsewhere (``..``, an absolute path, a symlink) is refused."""
        from .paths import inside

        chosen = value if value not in (None, "") else default
        return inside(self.share, chosen, what, root_name="cluster share")

    def __repr__(self) -> str:
        return f"AgiEnv(app={self.app!r}, home={str(self.home)!r}, verbose={self.verbose})"
