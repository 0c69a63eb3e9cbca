"""TLS of clusters with remote hosts: certificate files from ``[cluster]``, else temporary ones."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from agilab_panel.execute.cluster import cluster_security
from agilab_panel.execute.result import RunError
from remote.certs import make_certificate


def _cluster(ca: object = "", cert: object = "", key: object = "") -> SimpleNamespace:
    return SimpleNamespace(tls_ca_file=str(ca), tls_cert_file=str(cert), tls_key_file=str(key))


def test_no_files_named_gives_temporary_certificates_new_for_each_cluster() -> None:
    first, second = cluster_security(_cluster()), cluster_security(_cluster())
    assert first.require_encryption and "BEGIN CERTIFICATE" in first.tls_ca_file
    assert first.tls_ca_file != second.tls_ca_file


def test_the_named_files_are_what_every_part_presents(tmp_path: Path) -> None:
    files = make_certificate(tmp_path)
    security = cluster_security(_cluster(files["cert"], files["cert"], files["key"]))
    text = files["cert"].read_text()
    assert security.require_encryption and security.tls_ca_file == text
    for role in ("client", "scheduler", "worker"):
        config = security.get_tls_config_for_role(role)
        assert config["cert"] == text and config["key"] == files["key"].read_text()


@pytest.mark.parametrize("given, refused", [
    ({"ca": "x.crt"}, "tls_cert_file, tls_key_file is empty"),
    ({"ca": "missing.crt", "cert": "missing.crt", "key": "missing.key"}, "tls_ca_file .*missing.crt cannot be read"),
    ({"ca": "notpem.crt", "cert": "notpem.crt", "key": "notpem.crt"}, "tls_ca_file .*notpem.crt is not a PEM file"),
])
def test_incomplete_or_unreadable_files_are_refused_in_one_line(tmp_path: Path, given: dict, refused: str) -> None:
    (tmp_path / "notpem.crt").write_text("just text\n")
    paths = {k: tmp_path / v for k, v in given.items()}
    with pytest.raises(RunError, match=refused) as info:
        cluster_security(_cluster(paths.get("ca", ""), paths.get("cert", ""), paths.get("key", "")))
    assert "\n" not in str(info.value)
