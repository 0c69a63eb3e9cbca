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
    with pytest.raises(SettingsFileError, match=r"\[cluster\.workers\].*must be a positive int") as err:
        AppSettings(env)
    assert str(env.settings_path) in str(err.value)
    assert err.value.line == text.splitlines().index('"127.0.0.1" = 0') + 1


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
        ("verbose", True),
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
    for field, bad in (("max_unhealthy", True), ("max_restart_rate", False), ("max_restart_rate", float("nan"))):
        with pytest.raises(ValueError, match=field):
            setattr(health, field, bad)
    assert (health.max_unhealthy, health.max_restart_rate) == (0, 0.25)


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


# -- one argument at a time ------------------------------------------------------------------------
def test_save_args_with_one_value_keeps_the_others_as_the_file_has_them(env):
    env.settings_path.parent.mkdir(parents=True)
    env.settings_path.write_text(env.settings_seed_path.read_text().replace("size = 20000", "size = 777"))
    app = AppSettings(env)
    other = AppSettings(env)
    other.save_args({"partitions": 5})  # another editor changes a second argument meanwhile
    app.save_args({"size": 321})
    assert AppSettings(env).args_dict == {"partitions": 5, "size": 321}
    app.save_args({"partitions": 9})
    assert AppSettings(env).args_dict == {"partitions": 9, "size": 321}
    assert app.args_dict == {"partitions": 9, "size": 321}


@pytest.mark.parametrize("bad", [True, False])
def test_a_boolean_is_not_an_integer_argument(env, bad):
    app = AppSettings(env)
    before = env.settings_path.read_bytes()
    with pytest.raises(ValueError, match="'partitions'.*boolean"):
        app.save_args({"partitions": bad})
    assert env.settings_path.read_bytes() == before
    assert app.args.partitions == 4


# -- the file on disk: mode, links, interrupted saves ----------------------------------------------
def test_saving_keeps_the_file_mode_and_follows_a_symlinked_file(env, tmp_path):
    real = tmp_path / "dotfiles" / "minimal_app.toml"
    real.parent.mkdir()
    real.write_text(env.settings_seed_path.read_text())
    real.chmod(0o640)
    env.settings_path.parent.mkdir(parents=True)
    env.settings_path.symlink_to(real)
    app = AppSettings(env)
    app.save_args({"size": 99})
    app.cluster.verbose = 2
    app.save_cluster()
    assert env.settings_path.is_symlink() and os.readlink(env.settings_path) == str(real)
    assert "size = 99" in real.read_text() and "verbose = 2" in real.read_text()
    assert oct(real.stat().st_mode & 0o777) == oct(0o640)
    assert leftovers(env.settings_path.parent) == [] and leftovers(real.parent) == []


def test_the_next_save_removes_what_a_killed_save_left(env, stalled_writer):
    app = AppSettings(env)
    proc, tmp = stalled_writer(env.settings_path)
    proc.kill()
    proc.wait()
    assert leftovers(env.settings_path.parent) == [tmp.name]
    app.save_args({"size": 5})
    assert leftovers(env.settings_path.parent) == []
    assert AppSettings(env).args.size == 5


# -- every kind of broken file names its line, and stays as it is -----------------------------------
META = '[__meta__]\nschema = "agilab.app_settings.v1"\nversion = 1\n'


# Broken as a file: the store itself refuses to read or update it.
BROKEN_FILES = [
    pytest.param(b"[args]\npartitions = 4\n\xff\xfe\x00\x13garbage\n", 3, "not UTF-8", id="binary"),
    pytest.param(b'[args]\nsize = "a\x00b"\n', 2, "not valid TOML", id="nul-in-string"),
    pytest.param(b"[args]\nsize = 1\nsize = 2\n", 3, "not valid TOML", id="duplicate-key"),
    pytest.param(b"[args]\nsize = 1\n[cluster]\n[args]\n", 4, "not valid TOML", id="duplicate-table"),
    pytest.param(b"[args]\npartitions = 4\n[args.partitions]\n", 3, "not valid TOML", id="key-then-table"),
    pytest.param(b"args = 3\n", 1, "args must be a table", id="args-not-table"),
    pytest.param(b"[cluster]\npool = false\nworkers = [1, 2]\n", 3, "cluster.workers must be a table", id="workers-not-table"),
    pytest.param(b"[cluster]\nservice_health = true\n", 2, "cluster.service_health must be a table", id="health-not-table"),
    pytest.param(b'__meta__ = "v1"\n', 1, "__meta__ must be a table", id="meta-not-table"),
    pytest.param(b'[__meta__]\nschema = "someone.else.v1"\nversion = 1\n', 2, "'someone.else.v1' is not", id="unknown-schema"),
    pytest.param(b"# comment\nservice = [1]\n[args]\nsize = 3\n", 2, "service must be a table", id="service-not-table"),
    *[pytest.param(META.replace("version = 1", f"version = {v}").encode(), 3, "positive integer", id=f"version-{v}")
      for v in ("0", "-1", '"1"', "1.5", "true")],
]
# Well-formed, with a value the models refuse.
BAD_VALUES = [
    pytest.param(META.encode() + b"[cluster]\npool = false\nverbose = true\n", 6, r"\[cluster\] 'verbose'.*boolean", id="verbose-bool"),
    pytest.param(META.encode() + b'[cluster]\npool = "yes"\n', 5, r"\[cluster\].*pool", id="pool-text"),
    pytest.param(META.encode() + b'[cluster]\nscheduler = "bad host"\n', 5, r"\[cluster\].*bad host", id="scheduler"),
    pytest.param(META.encode() + b'[cluster]\nworkers = { "a" = 1, "b" = 0 }\n', 5, r"\[cluster.workers\].*'b'", id="worker-slots"),
    pytest.param(META.encode() + b"[cluster.service_health]\nmax_restart_rate = nan\n", 5, "NaN", id="nan-rate"),
    pytest.param(META.encode() + b"[args]\nsize = 4\npartitions = true\n", 6, r"\[args\].*'partitions'.*boolean", id="partitions-bool"),
    pytest.param(META.encode() + b'[args]\n"size" = -3\n', 5, r"\[args\].*'size'", id="size-negative"),
    pytest.param(META.encode() + b"[cluster]\npool = false\ncluster_enable = true\n", 6,
                 r"\[cluster\] unknown setting 'cluster_enable'", id="misspelt-cluster-key"),
    pytest.param(META.encode() + b"[cluster.service_health]\nmax_unhealty = 1\n", 5,
                 r"\[cluster.service_health\] unknown setting 'max_unhealty'", id="misspelt-health-key"),
]


def _refused(env, content: bytes, line: int, message: str) -> None:
    env.settings_path.parent.mkdir(parents=True)
    env.settings_path.write_bytes(content)
    with pytest.raises(SettingsFileError, match=message) as err:
        AppSettings(env)
    assert (err.value.path, err.value.line) == (env.settings_path, line)
    assert str(err.value).startswith(f"{env.settings_path}:{line}: ") and "\n" not in str(err.value)


@pytest.mark.parametrize(("content", "line", "message"), BROKEN_FILES)
def test_a_broken_file_names_file_and_line_and_is_never_overwritten(env, content, line, message):
    _refused(env, content, line, message)
    store = SettingsStore(env.settings_path, env.settings_seed_path)
    for write in (lambda: store.update({("args", "size"): 1}), lambda: store.replace_table(("cluster", "workers"), {"a": 1})):
        with pytest.raises(SettingsFileError, match=message):
            write()
    assert env.settings_path.read_bytes() == content


@pytest.mark.parametrize(("content", "line", "message"), BAD_VALUES)
def test_a_bad_value_names_file_line_and_key(env, content, line, message):
    _refused(env, content, line, message)
    assert env.settings_path.read_bytes() == content


def test_a_settings_file_above_5_mb_is_refused_unread(env):
    env.settings_path.parent.mkdir(parents=True)
    content = env.settings_seed_path.read_bytes() + b"# padding\n" * 600_000  # valid TOML, 6 MB
    env.settings_path.write_bytes(content)
    with pytest.raises(SettingsFileError, match="larger than the 5 MB") as err:
        AppSettings(env)
    assert err.value.path == env.settings_path
    with pytest.raises(SettingsFileError, match="larger than the 5 MB"):
        SettingsStore(env.settings_path, env.settings_seed_path).update({("args", "size"): 1})
    assert env.settings_path.read_bytes() == content


@pytest.mark.parametrize(("body", "line", "message"), [
    pytest.param(b"[service]\npoll_interval = 1.0\nmax_retries = true\n", 6, "'max_retries' must be a number",
                 id="retries-bool"),
    pytest.param(b"[service]\n\npol_interval = 2\n", 6, "unknown service setting 'pol_interval'", id="misspelt"),
])
def test_a_bad_service_setting_names_file_and_line(env, body, line, message):
    from agilab_panel.service.config import load_service_settings

    env.settings_path.parent.mkdir(parents=True)
    env.settings_path.write_bytes(META.encode() + body)
    with pytest.raises(SettingsFileError, match=message) as err:
        load_service_settings(AppSettings(env))
    assert (err.value.path, err.value.line) == (env.settings_path, line)
    assert env.settings_path.read_bytes() == META.encode() + body


@pytest.mark.parametrize("kind", ["folder", "fifo", "dangling-link-loop"])
def test_a_settings_path_that_is_not_a_file_is_refused_naming_it(env, kind):
    env.settings_path.parent.mkdir(parents=True)
    if kind == "folder":
        env.settings_path.mkdir()
    elif kind == "fifo":
        os.mkfifo(env.settings_path)  # reading it would wait forever for a writer
    else:
        env.settings_path.symlink_to(env.settings_path)
    with pytest.raises(SettingsFileError, match="not a regular file|cannot be (read|created): Too many levels") as err:
        AppSettings(env)
    assert err.value.path == env.settings_path
