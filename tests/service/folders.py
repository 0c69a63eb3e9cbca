"""Service folders of the shared installed homes, as tests find them."""
from __future__ import annotations

import shutil
from pathlib import Path


def empty_service_folder(share: Path, app: str) -> None:
    """Start a test from an empty service queue in a shared installed home (tasks of earlier tests would
    count in its queue); a service still running there is an earlier test's fault, said at once."""
    folder = Path(share) / "service" / app
    assert not (folder / "service.json").exists(), f"a service of an earlier test still runs in {folder}"
    shutil.rmtree(folder, ignore_errors=True)
