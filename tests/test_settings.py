"""app_settings.toml (SPEC §5): seeding, comment-preserving atomic writes, leaf merges, refusals."""
from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from agilab_panel.env import AgiEnv
from agilab_panel.settings import (
    AppSettings,
    ClusterSettings,
    ServiceHealthSettings,
    SettingsFileError,
    SettingsStore,
    UnknownArgumentError,
    atomic_write_text,
    make_args,
)

SEED = """\
# Seed comment kept at the top.
[__meta__]
schema = "agilab.app_settings.v1"
version = 1

[args]
size = 10   # integers per range

[cluster]
pool = false
"""


@pytest.fixture
def store(tmp_path: Path) -> SettingsStore:
    seed = tmp_path / "seed" / "app_settings.toml"
    seed.parent.mkdir()
    seed.write_text(SEED)
    return SettingsStore(tmp_path / "home" / "apps" / "demo" / "app_settings.toml", seed)


@pytest.fixture
def env() -> AgiEnv:
    return AgiEnv("minimal_app")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- seeding ---------------------------------------------------------------------------------------
def test_seeded_on_first_use(env):
    assert not env.settings_path.exists()
    app = AppSettings(env)
    assert env.settings_path.read_text() == env.settings_seed_path.read_text()
    assert app.args_dict == {"partitions": 4, "size": 20000}
    assert app.cluster.workers == {"127.0.0.1": 2}
    assert app.service_health.max_restart_rate == 0.25


def test_reseeded_when_deleted(env):
    app = AppSettings(env)
    app.args.size = 5
    app.save_args()
    env.settings_path.unlink()
    app.reload()
    assert env.settings_path.read_text() == env.settings_seed_path.read_text()
    assert app.args.size == 20000


def test_store_reseeds_on_read(store):
    store.read()
    store.path.unlink()
    assert store.read()["args"]["size"] == 10


# -- writes ----------------------------------------------------------------------------------------
def test_comments_and_layout_survive_a_save(env):
    app = AppSettings(env)
    app.args.size = 123
    app.cluster.pool = True
    app.cluster.workers = {"127.0.0.1": 1, "::1": 2}
    app.save_args()
    app.save_cluster()
    text = env.settings_path.read_text()
    assert text.startswith("# Versioned settings of minimal_app")
    assert "partitions = 4   # how many ranges the work is cut into" in text
    assert "size = 123     # integers per range" in text
    assert "pool = true" in text
    assert '"::1" = 2' in text
    assert text.index("[args]") < text.index("[cluster]") < text.index("[cluster.workers]") < text.index("[cluster.service_health]")
    # Nothing else moved: the file differs from the seed in exactly the changed lines.
    changed = set(text.splitlines()) ^ set(env.settings_seed_path.read_text().splitlines())
    assert changed == {
        "size = 20000     # integers per range",
        "size = 123     # integers per range",
        "pool = false",
        "pool = true",
        '"::1" = 2',
        '"127.0.0.1" = 2',
        '"127.0.0.1" = 1',
    }


def test_update_creates_missing_tables_and_deletes_on_none(store):
    store.update({("cluster", "service_health", "max_unhealthy"): 3, ("args", "size"): None})
    doc = store.read()
    assert doc["cluster"]["service_health"]["max_unhealthy"] == 3
    assert "size" not in doc["args"]


def test_replace_table_makes_the_table_exact(store):
    store.replace_table(("cluster", "workers"), {"a": 1, "b": 2})
    store.replace_table(("cluster", "workers"), {"b": 3})
    assert dict(store.read()["cluster"]["workers"]) == {"b": 3}


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out" / "file.toml"
    atomic_write_text(target, "a = 1\n")
    atomic_write_text(target, "a = 2\n")
    assert target.read_text() == "a = 2\n"
    assert leftovers(target.parent) == []


def test_crash_during_write_keeps_the_old_file(store, monkeypatch):
    store.update({("args", "size"): 11})
    before = store.path.read_text()

    def crash(*args, **kwargs):
        raise OSError("disk vanished")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk vanished"):
        store.update({("args", "size"): 12})
    monkeypatch.undo()
    assert store.path.read_text() == before
    assert leftovers(store.path.parent) == []


# -- merges and concurrency ------------------------------------------------------------------------
def test_two_editors_change_different_fields_and_both_survive(env):
    first, second = AppSettings(env), AppSettings(env)
    first.cluster.pool = True
    first.cluster.workers = {"10.0.0.1": 3}
    first.args.size = 7
    first.save_cluster()
    first.save_args()
    second.cluster.verbose = 3
    second.args.partitions = 9
    second.service_health.max_unhealthy = 2
    second.save_cluster()  # second still holds the old pool and workers: they must not be written back
    second.save_args()
    second.save_service_health()
    fresh = AppSettings(env)
    assert fresh.cluster.pool is True
    assert fresh.cluster.workers == {"10.0.0.1": 3}
    assert fresh.cluster.verbose == 3
    assert fresh.args_dict == {"partitions": 9, "size": 7}
    assert fresh.service_health.max_unhealthy == 2


def test_a_named_field_is_written_even_when_unchanged_here(env):
    first, second = AppSettings(env), AppSettings(env)
    first.cluster.verbose = 2
    first.save_cluster("verbose")
    second.save_cluster("verbose")  # an explicit save of the value this object holds
    assert AppSettings(env).cluster.verbose == 1


def test_save_args_with_values_validates_and_persists(env):
    app = AppSettings(env)
    app.save_args({"partitions": 6, "size": 20000})
    assert AppSettings(env).args_dict == {"partitions": 6, "size": 20000}
    with pytest.raises(ValueError, match="'partitions'"):
        app.save_args({"partitions": 0})
    assert AppSettings(env).args.partitions == 6


def _update_many(path: str, seed: str, prefix: str, count: int) -> None:
    store = SettingsStore(Path(path), Path(seed))
    for i in range(count):
        store.update({("args", f"{prefix}{i}"): i})


def test_two_threads_lose_nothing(store):
    count = 40
    threads = [threading.Thread(target=_update_many, args=(str(store.path), str(store.seed), p, count)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    args = store.read()["args"]
    assert [f"{p}{i}" for p in "ab" for i in range(count) if f"{p}{i}" not in args] == []
    assert args["size"] == 10
    assert leftovers(store.path.parent) == []


def test_two_processes_lose_nothing(store):
    count = 40
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_update_many, args=(str(store.path), str(store.seed), p, count)) for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    args = store.read()["args"]
    assert [f"{p}{i}" for p in "ab" for i in range(count) if f"{p}{i}" not in args] == []
    assert leftovers(store.path.parent) == []


# -- refusals --------------------------------------------------------------------------------------
def test_a_file_that_does_not_parse_is_never_overwritten(env):
    env.settings_path.parent.mkdir(parents=True)
    broken = "[args]\npartitions = 4\nsize = = 3\n"
    env.settings_path.write_text(broken)
    with pytest.raises(SettingsFileError) as err:
        AppSettings(env)
    assert err.value.path == env.settings_path
    assert err.value.line == 3
    assert f"{env.settings_path}:3" in str(err.value)
    store = SettingsStore(env.settings_path, env.settings_seed_path)
    with pytest.raises(SettingsFileError):
        store.update({("args", "size"): 1})
    with pytest.raises(SettingsFileError):
        store.replace_table(("cluster", "workers"), {"a": 1})
    assert env.settings_path.read_text() == broken


def test_reseed_keeps_the_broken_file_as_a_backup(env):
    env.settings_path.parent.mkdir(parents=True)
    env.settings_path.write_text("not toml at all [\n")
    store = SettingsStore(env.settings_path, env.settings_seed_path)
    backup = store.reseed()
    assert backup is not None and backup.parent == env.settings_path.parent
    assert backup.read_text() == "not toml at all [\n"
    assert env.settings_path.read_text() == env.settings_seed_path.read_text()
    assert AppSettings(env).args.partitions == 4
    second = store.reseed()  # a second reseed in the same second keeps the first backup
    assert second != backup
    assert backup.read_text() == "not toml at all [\n"


def test_reseed_without_a_file_makes_no_backup(store):
    assert store.reseed() is None
    assert store.path.read_text() == SEED


def test_future_schema_version_is_refused(store):
    store.path.parent.mkdir(parents=True)
    store.path.write_text(SEED.replace("version = 1", "version = 2"))
    with pytest.raises(SettingsFileError, match="version 2 is newer") as err:
        store.read()
    assert str(store.path) in str(err.value)
    with pytest.raises(SettingsFileError):
        store.update({("args", "size"): 1})
    assert "version = 2" in store.path.read_text()


def test_bad_values_in_the_file_name_the_table(env):
    env.settings_path.parent.mkdir(parents=True)
    text = env.settings_seed_path.read_text().replace('"127.0.0.1" = 2', '"127.0.0.1" = 0')
    env.settings_path.write_text(text)
    with pytest.raises(SettingsFileError, match=r"\[cluster\].*must be a positive int") as err:
        AppSettings(env)
    assert str(env.settings_path) in str(err.value)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("workers", {"h": 0}),
        ("workers", {"h": -2}),
        ("workers", {"bad host": 1}),
        ("workers", {}),
        ("workers", ["127.0.0.1"]),
        ("scheduler", "host:99999"),
        ("scheduler", "bad host"),
        ("verbose", 4),
    ],
)
def test_invalid_cluster_values_are_refused_at_the_field(field, bad):
    cluster = ClusterSettings()
    old = getattr(cluster, field)
    with pytest.raises(ValueError):
        setattr(cluster, field, bad)
    assert getattr(cluster, field) == old


def test_valid_cluster_values_and_mode_hint():
    cluster = ClusterSettings(workers={"::1": 1, "node.example.com": 2}, scheduler="[::1]:8786")
    cluster.pool = cluster.rapids = cluster.cluster_enabled = True
    assert cluster.mode == 13
    assert "13: rapids and dask and pool" in cluster.mode_hint
    assert "0, 1, 4, 5, 8, 9, 12, 13" in cluster.mode_hint


def test_service_health_defaults_and_bounds():
    health = ServiceHealthSettings()
    assert (health.allow_idle, health.max_unhealthy, health.max_restart_rate) == (False, 0, 0.25)
    with pytest.raises(ValueError):
        health.max_unhealthy = -1


def test_unknown_argument_names_the_key(env):
    app = AppSettings(env)
    with pytest.raises(UnknownArgumentError, match="'partition_count'") as err:
        app.save_args({"partition_count": 3})
    assert err.value.key == "partition_count"
    assert "partitions" in err.value.known
    with pytest.raises(UnknownArgumentError, match="'bogus'"):
        make_args(app.args_class, {"bogus": 1}, "minimal_app")


def test_unknown_argument_in_the_file_names_file_and_key(env):
    env.settings_path.parent.mkdir(parents=True)
    env.settings_path.write_text(env.settings_seed_path.read_text().replace("[args]\n", "[args]\nold_name = 1\n"))
    with pytest.raises(SettingsFileError, match="'old_name'") as err:
        AppSettings(env)
    assert str(env.settings_path) in str(err.value)
    assert isinstance(err.value.__cause__, UnknownArgumentError)


def test_no_password_field_exists():
    assert not any("password" in name.lower() for name in ClusterSettings.param)
