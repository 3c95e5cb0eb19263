"""The configuration reference is generated from pytest's parser and cannot drift.

docs/configuration.md holds a table between ``<!-- config-table -->`` markers,
written by docs/gen_config_reference.py. These tests build the same parser
and fail when the committed table is not what the script writes now, or when
an option or ini name of the plugin has no row with its default.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"
SCRIPT = ROOT / "docs" / "gen_config_reference.py"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_config_reference", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_config_reference", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def parser(gen: ModuleType) -> Any:
    return gen.build_parser()


def _section(gen: ModuleType, text: str) -> str:
    start = text.index(gen.START) + len(gen.START)
    return text[start : text.index(gen.END)]


def _rows(gen: ModuleType, text: str) -> list[list[str]]:
    rows = []
    for line in _section(gen, text).splitlines():
        if line.startswith("| ") and not line.startswith("| option |"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def test_configuration_page_has_the_generated_table(gen: ModuleType, parser: Any) -> None:
    assert PAGE.is_file(), f"{PAGE} is missing"
    text = PAGE.read_text(encoding="utf-8")
    assert gen.START in text, f"{PAGE} has no {gen.START} marker"
    expected = gen.render_section(gen.collect_rows(parser))
    assert _section(gen, text) == expected, (
        "docs/configuration.md is out of date with the plugin's options; "
        "run: .venv/bin/python docs/gen_config_reference.py"
    )


def test_every_option_and_ini_name_has_a_row_with_its_default(
    gen: ModuleType, parser: Any, pytester: pytest.Pytester
) -> None:
    from pytest_replay import plugin

    rows = _rows(gen, PAGE.read_text(encoding="utf-8"))
    options = parser.getgroup("replay").options
    assert options, "the replay group has no options at all"
    by_flag = {flag: row for row in rows for flag in row[0].strip("`").split("` `")}
    # The documented default must be what the plugin really uses when neither
    # the option nor its ini twin is given: ask a configured pytest.
    config = pytester.parseconfigure()
    for option in options:
        for flag in option.names():
            assert flag.startswith("--replay"), f"{flag} is not named --replay-*"
            assert flag in by_flag, f"no row for {flag} in docs/configuration.md"
            ini = plugin._OPTION_DEFAULTS.get(option.dest, (None, None))[0]
            assert by_flag[flag][1] == (f"`{ini}`" if ini else "—"), flag
            if option.dest in plugin._OPTION_DEFAULTS:
                effective = plugin.get_option(config, option.dest)
            else:
                effective = config.getoption(option.dest)
            if effective is None and option.attrs().get("const") in (True, False):
                effective = not option.attrs()["const"]  # an unset flag is "off"
            assert by_flag[flag][3] == gen.format_default(effective), flag
    ini_names = {row[1].strip("`") for row in rows}
    for name in parser._inidict:
        if name == "replay" or name.startswith("replay_"):
            assert name in ini_names, f"no row for ini name {name} in docs/configuration.md"


def test_the_table_comes_from_the_parser_not_from_a_list(
    gen: ModuleType, pytester: pytest.Pytester
) -> None:
    # A conftest adds one more option to the group and one ini name; the
    # generator must pick both up from the parser it is given.
    pytester.makeconftest(
        """
        def pytest_addoption(parser):
            parser.getgroup("replay").addoption(
                "--replay-extra-thing", dest="replay_extra_thing", default="7",
                help="an | extra <option>")
            parser.addini("replay_extra_ini", help="extra ini", type="bool", default=True)
        """
    )
    config = pytester.parseconfig()
    rows = {row.flags or (row.ini,): row for row in gen.collect_rows(config._parser)}
    assert rows[("--replay-report",)].ini == "replay_report"
    extra = rows[("--replay-extra-thing",)]
    assert (extra.dest, extra.default, extra.ini) == ("replay_extra_thing", "7", None)
    ini_only = rows[("replay_extra_ini",)]
    assert (ini_only.ini_type, ini_only.default) == ("bool", True)
    table = gen.render_table(gen.collect_rows(config._parser))
    # help text is escaped for a Markdown table: no stray column, no HTML tag
    assert "| an \\| extra &lt;option&gt; |" in table
    assert "| `replay_extra_ini` | bool | `true` | extra ini |" in table


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "—"), ("", "—"), ([], "—"), (True, "`true`"), (False, "`false`"), (100, "`100`"),
     ("cassettes", "`cassettes`"), (["a", "b"], "`a b`")],
)  # fmt: skip
def test_format_default(gen: ModuleType, value: object, shown: str) -> None:
    assert gen.format_default(value) == shown


def test_script_check_mode_and_rewrite(gen: ModuleType, tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text(f"# Configuration\n\nintro\n\n{gen.START}\nstale\n{gen.END}\n\nafter\n")
    assert gen.main([str(page), "--check"]) == 1
    assert "stale" in page.read_text()  # --check never writes
    assert gen.main([str(page)]) == 0
    text = page.read_text()
    assert "stale" not in text
    assert "`--replay-report`" in text
    assert text.startswith("# Configuration\n\nintro\n\n")
    assert text.endswith(f"{gen.END}\n\nafter\n")
    assert gen.main([str(page), "--check"]) == 0


def test_script_errors_name_the_file_and_the_fix(
    gen: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.md"
    assert gen.main([str(missing)]) == 2
    assert f"{missing}: no such file" in capsys.readouterr().err
    page = tmp_path / "configuration.md"
    page.write_text("# Configuration without markers\n")
    assert gen.main([str(page)]) == 2
    assert f"{page}: no '<!-- config-table -->'" in capsys.readouterr().err
    assert page.read_text() == "# Configuration without markers\n"
