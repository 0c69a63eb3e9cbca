"""Values given on the command line: one value per --set, types decided by the app's args."""
from __future__ import annotations

import pytest

from agilab_panel import AgiEnv
from agilab_panel.cli import main, parse_set
from agilab_panel.distrib import resolve_inputs


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("item", "value"), [
    ("partitions=3", 3),
    ("partitions=true", True),
    ("name=a\nb", "a\nb"),  # not TOML: the whole text is the one value
    ('name="""a\nb"""', "a\nb"),
    ("items=[1,\n 2]", [1, 2]),
    ("partitions=3\n", 3),
])
def test_each_set_is_one_value(item: str, value: object) -> None:
    key = item.partition("=")[0]
    assert parse_set([item]) == {key: value}


@pytest.mark.parametrize(("items", "message"), [
    (["partitions=3\nsize=4"], "reads as several settings"),
    (["partitions=3\r\nsize = 4"], "reads as several settings"),
    (["size=1", "size=2"], "given twice"),
])
def test_a_set_that_is_not_one_value_is_refused(items: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_set(items)


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "partitions=true"], "'partitions' must be a number, not the boolean True"),
    (["--set", "partitions=3\nsize=4"], "reads as several settings"),
    (["--workers", '{"127.0.0.1": 1, "127.0.0.1": 2}'], "names '127.0.0.1' twice"),
])
def test_the_cli_refuses_with_one_line_and_writes_nothing(capsys, agilab_dirs, args, message) -> None:
    code, err = run_cli(capsys, "distrib", "--app", "minimal_app", "--verbose", "0", *args)
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert not AgiEnv("minimal_app").plan_path.exists()


@pytest.mark.parametrize(("app", "params", "message"), [
    ("minimal_app", {"partitions": True}, "not the boolean True"),
    ("minimal_app", {"size": False}, "not the boolean False"),
    ("mandelbrot", {"x_min": float("nan")}, "not NaN"),
])
def test_the_api_refuses_a_boolean_or_nan_for_a_number(app: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_inputs(AgiEnv(app, verbose=0), params)
