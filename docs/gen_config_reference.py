"""(Re)generate the option table of docs/configuration.md from pytest's parser.

The table between ``<!-- config-table -->`` and ``<!-- /config-table -->`` is
never edited by hand: this script builds pytest's real argument parser with the
plugin registered, reads every option of the ``replay`` group and every
``replay*`` ini name from it, and rewrites the section. ``tests/test_docs_config.py``
fails when the committed table differs from what this script would write, so the
reference cannot drift from the code.

    .venv/bin/python docs/gen_config_reference.py          # rewrite the section
    .venv/bin/python docs/gen_config_reference.py --check  # exit 1 when out of date
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START = "<!-- config-table -->"
END = "<!-- /config-table -->"
DEFAULT_PAGE = Path(__file__).resolve().parent / "configuration.md"
GROUP = "replay"


@dataclass(frozen=True)
class Row:
    """One line of the reference: a command-line option and/or an ini name."""

    flags: tuple[str, ...]  # e.g. ("--replay-dir",); () for an ini-only setting
    dest: str | None
    ini: str | None
    ini_type: str | None
    default: Any
    help: str


def build_parser() -> Any:
    """pytest's own parser, with this project's plugin registered on it.

    ``pytest_addoption`` is a historic hook: registering the plugin replays it
    on the parser, exactly as a pytest run does. The attributes read here
    (``_parser``, ``_inidict``) are pytest internals; a clear error beats a
    silently empty table if a future pytest renames them.
    """
    from _pytest.config import get_config

    config = get_config()
    config.pluginmanager.import_plugin("pytest_replay.plugin")
    parser = getattr(config, "_parser", None)
    if parser is None or not hasattr(parser, "_inidict"):
        raise SystemExit(
            "gen_config_reference: this pytest version has no Config._parser/_inidict; "
            "update docs/gen_config_reference.py for it"
        )
    return parser


def _effective_defaults() -> dict[str, tuple[str | None, Any]]:
    # plugin.py keeps the real default of each option here: the command-line
    # default is always None so that "not given" can fall back to the ini twin.
    from pytest_replay import plugin

    return dict(plugin._OPTION_DEFAULTS)


def collect_rows(parser: Any) -> list[Row]:
    """Every option of the ``replay`` group, then every ini-only ``replay*`` name."""
    defaults = _effective_defaults()
    inidict: dict[str, tuple[str, Any, Any]] = dict(parser._inidict)
    rows: list[Row] = []
    seen_ini: set[str] = set()
    for option in parser.getgroup(GROUP).options:
        dest = option.dest
        ini, default = defaults.get(dest, (None, option.default))
        action = type(option._action).__name__ if hasattr(option, "_action") else ""
        if default is None and action in ("_StoreTrueAction", "_StoreFalseAction"):
            # A flag's command-line default is None (so the ini twin can apply);
            # what the user gets when giving neither is "off" / "on".
            default = action == "_StoreFalseAction"
        ini_type = None
        if ini is not None and ini in inidict:
            ini_type = _type_name(inidict[ini][1])
            seen_ini.add(ini)
        rows.append(
            Row(
                flags=tuple(option.names()),
                dest=dest,
                ini=ini,
                ini_type=ini_type,
                default=default,
                help=str(option.attrs().get("help") or ""),
            )
        )
    for name in sorted(inidict):
        if name in seen_ini or not (name == GROUP or name.startswith(GROUP + "_")):
            continue
        help_text, ini_type, default = inidict[name]
        rows.append(Row((), None, name, _type_name(ini_type), default, str(help_text)))
    return rows


def _type_name(ini_type: Any) -> str:
    if ini_type is None:
        return "string"
    if isinstance(ini_type, type):
        return {"str": "string"}.get(ini_type.__name__, ini_type.__name__)
    return str(ini_type)


def format_default(value: Any) -> str:
    """How a default is spelled in the table (the test checks rows with this too)."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, (list, tuple)):
        return "`" + " ".join(str(v) for v in value) + "`"
    return f"`{value}`"


def _cell(text: str) -> str:
    # Help strings are plain text: escape what Markdown tables or HTML would eat.
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")


def render_table(rows: Iterable[Row]) -> str:
    lines = [
        "| option | ini name | type | default | description |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        flags = " ".join(f"`{flag}`" for flag in row.flags) or "—"
        ini = f"`{row.ini}`" if row.ini else "—"
        lines.append(
            f"| {flags} | {ini} | {row.ini_type or '—'} | "
            f"{format_default(row.default)} | {_cell(row.help)} |"
        )
    return "\n".join(lines)


def render_section(rows: Iterable[Row]) -> str:
    """The text between the markers (markers excluded), with its own note."""
    return (
        "\n<!-- generated by docs/gen_config_reference.py from pytest's parser; "
        "do not edit by hand -->\n\n" + render_table(rows) + "\n\n"
    )


def replace_section(page_text: str, section: str, page: Path) -> str:
    start = page_text.find(START)
    end = page_text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(
            f"{page}: no '{START}' ... '{END}' markers (in that order); add them where the "
            "table belongs, then run docs/gen_config_reference.py again"
        )
    return page_text[: start + len(START)] + section + page_text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("page", nargs="?", type=Path, default=DEFAULT_PAGE)
    cli.add_argument("--check", action="store_true", help="exit 1 if the page is out of date")
    args = cli.parse_args(argv)
    page: Path = args.page
    if not page.is_file():
        print(f"{page}: no such file; create it with the markers first", file=sys.stderr)
        return 2
    old = page.read_text(encoding="utf-8")
    try:
        new = replace_section(old, render_section(collect_rows(build_parser())), page)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if new == old:
        print(f"{page}: up to date")
        return 0
    if args.check:
        print(f"{page}: out of date; run docs/gen_config_reference.py", file=sys.stderr)
        return 1
    page.write_text(new, encoding="utf-8")
    print(f"{page}: table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
