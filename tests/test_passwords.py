"""The page's password: only its salted hash is kept, from a file or the environment, never echoed."""
from __future__ import annotations

import pytest

from agilab_panel.passwords import PASSWORD_ENV, hash_password, load_password_hash, verify_password


def test_a_hash_checks_its_password_only_and_never_contains_it():
    hashed = hash_password("s3cret pass")
    assert "s3cret" not in hashed and hashed != hash_password("s3cret pass")  # a fresh salt each time
    assert verify_password("s3cret pass", hashed)
    assert not verify_password("s3cret pass ", hashed) and not verify_password("", hashed)


def test_a_password_file_may_hold_the_password_or_its_hash(tmp_path, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    plain, hashed = tmp_path / "plain", tmp_path / "hashed"
    plain.write_text("  spaces count  \nsecond line ignored\n")
    hashed.write_text(hash_password("from a hash") + "\n")
    assert verify_password("  spaces count  ", load_password_hash(plain))
    assert verify_password("from a hash", load_password_hash(hashed))
    assert load_password_hash() is None
    monkeypatch.setenv(PASSWORD_ENV, "from the environment")
    assert verify_password("from the environment", load_password_hash())


@pytest.mark.parametrize(("content", "message"), [
    (b"", "is empty"),
    (b"   \n", "is empty"),
    (b"scrypt$16384$8$1$c2FsdA$c2hvcnQ", "parameters out of range"),
    (b"scrypt$3$8$1$c2FsdA$" + b"A" * 43, "parameters out of range"),
    (b"scrypt$16384$8$one$c2FsdA$x", "damaged"),
    (b"\xff\xfe", "not UTF-8"),
    (b"x" * 5000, "larger than"),
])
def test_a_broken_password_file_is_refused_naming_the_file(tmp_path, content, message):
    path = tmp_path / "password"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        load_password_hash(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_missing_password_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="No such file"):
        load_password_hash(tmp_path / "nowhere")
