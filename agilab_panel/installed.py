"""Whether the worker map in use is installed: what enables RUN and ticks "Installed" on the page.

The local worker environment counts when the map names this machine, or when the mode runs on this
machine anyway (no cluster bit); each remote host counts in cluster mode, by what its last INSTALL
recorded here (:mod:`agilab_panel.remote.status`: no SSH connection is opened to answer).
"""
from __future__ import annotations

from collections.abc import Mapping

from .env import AgiEnv
from .hosts import is_local_host
from .install import check_install
from .modes import DASK_MODE

__all__ = ["check_workers_install"]


def check_workers_install(env: AgiEnv, workers: Mapping[str, int], modes_enabled: int) -> str | None:
    """None when every part of ``workers`` a run in ``modes_enabled`` uses is installed; else why not
    (one reason per host that is not, joined by ``; ``)."""
    from .remote.status import check_remote_install

    cluster = bool(modes_enabled & DASK_MODE)
    remote = [h for h in workers if not is_local_host(h)] if cluster else []
    reasons = []
    if not cluster or len(remote) < len(workers) or not workers:
        # this machine, named as the worker map names it (its first local host), else "localhost"
        local = next((h for h in workers if is_local_host(h)), "localhost")
        reasons.append(check_install(env, modes_enabled, local))
    reasons.extend(check_remote_install(env, modes_enabled, h) for h in dict.fromkeys(remote))
    return "; ".join(r for r in reasons if r) or None
