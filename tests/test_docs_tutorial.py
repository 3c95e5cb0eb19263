"""The docs' tutorials are run as written, so they cannot rot.

The convention (described in docs/contributing.md, summarised here):

- A page opts in with ``<!-- docs-test -->`` as its first line.
- A fenced block with ``title="name"`` is a file: it is written to ``name`` in a
  fresh directory, in page order (a later block with the same title replaces
  it). A line ``--8<-- "path"`` inside it is replaced by ``docs/examples/path``,
  as the mkdocs snippets extension does when it builds the site.
- A ``console`` block is run: each ``$ command`` line is run with bash in that
  directory; the lines after it are expected output. Each expected line must
  appear in the output, in order, as a substring; ``...`` inside a line matches
  anything. Every command of the block must exit 0, unless an HTML comment
  ``<!-- docs-test: exit=N -->`` right before the block says N;
  ``<!-- docs-test: skip -->`` leaves a block out (e.g. ``pip install``).
- Other blocks (``bash``, untitled ``python``) are shown, not run; ``python``
  blocks on the pages listed in ``OWN_PAGES`` must at least parse.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
MARKER = "<!-- docs-test -->"
OWN_PAGES = ("index.md", "quickstart.md", "concepts.md", "faq.md", "xdist.md", "llm-pipeline.md")

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,})(?P<lang>[\w+-]*)\s*(?P<attrs>.*)$")
_ATTR = re.compile(r'(\w+)="([^"]*)"')
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<what>[^>]*?)\s*-->\s*$")
_SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$')


@dataclass
class Block:
    lang: str
    attrs: dict[str, str]
    body: str
    line: int  # 1-based line of the opening fence
    directive: str | None


def parse_blocks(text: str) -> list[Block]:
    """Fenced blocks of a Markdown page, with the docs-test directive before each."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    directive: str | None = None
    while index < len(lines):
        line = lines[index]
        found = _DIRECTIVE.match(line)
        if found:
            directive = found.group("what")
            index += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if line.strip():
                directive = None  # a directive applies to the very next block only
            index += 1
            continue
        indent, ticks = fence.group("indent"), fence.group("fence")
        body: list[str] = []
        end = index + 1
        while end < len(lines) and lines[end].strip() != ticks:
            body.append(lines[end][len(indent) :] if lines[end].startswith(indent) else lines[end])
            end += 1
        if end == len(lines):
            raise AssertionError(f"line {index + 1}: fence {ticks} is never closed")
        blocks.append(
            Block(
                lang=fence.group("lang"),
                attrs=dict(_ATTR.findall(fence.group("attrs"))),
                body="\n".join(body) + "\n",
                line=index + 1,
                directive=directive,
            )
        )
        directive = None
        index = end + 1
    return blocks


def expand_snippets(body: str) -> str:
    out: list[str] = []
    for line in body.splitlines(keepends=True):
        found = _SNIPPET.match(line)
        if found:
            path = EXAMPLES / found.group("path")
            assert path.is_file(), f"snippet {found.group('path')!r} not found under {EXAMPLES}"
            out.append(path.read_text(encoding="utf-8"))
        else:
            out.append(line)
    return "".join(out)


@dataclass
class Command:
    command: str
    expected: list[str]
    exit: int


def parse_console(block: Block) -> list[Command]:
    exit_code = 0
    if block.directive and block.directive.startswith("exit="):
        exit_code = int(block.directive.partition("=")[2])
    commands: list[Command] = []
    for line in block.body.splitlines():
        if line.startswith("$ "):
            commands.append(Command(line[2:].strip(), [], exit_code))
        elif line.strip():
            if not commands:
                raise AssertionError(f"line {block.line}: output before any '$ ' command")
            commands[-1].expected.append(line.strip())
    return commands


def find_lines(expected: list[str], output: str) -> str | None:
    """``None`` when every expected line occurs in order, else the first one missing."""
    lines = output.splitlines()
    position = 0
    for want in expected:
        fragments = [f.strip() for f in want.split("...") if f.strip()]
        while position < len(lines):
            line = lines[position]
            position += 1
            start = 0
            for fragment in fragments:
                start = line.find(fragment, start)
                if start < 0:
                    break
                start += len(fragment)
            else:
                break
        else:
            return want
    return None


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["COLUMNS"] = "200"  # pytest truncates summary lines to the terminal width
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_page(page: Path, workdir: Path) -> list[str]:
    """Run a docs-test page in ``workdir``; returns a transcript for failure messages."""
    transcript: list[str] = []
    name = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name
    for block in parse_blocks(page.read_text(encoding="utf-8")):
        where = f"{name}:{block.line}"
        if block.directive == "skip":
            continue
        if "title" in block.attrs:
            target = workdir / block.attrs["title"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(expand_snippets(block.body), encoding="utf-8")
            transcript.append(f"[{where}] wrote {block.attrs['title']}")
            continue
        if block.lang != "console":
            continue
        for command in parse_console(block):
            proc = subprocess.run(
                ["bash", "-c", command.command],
                cwd=workdir,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            output = proc.stdout + proc.stderr
            transcript.append(
                f"[{where}] $ {command.command}  (exit {proc.returncode})\n{_tail(output)}"
            )
            if proc.returncode != command.exit:
                raise AssertionError(
                    f"{where}: `{command.command}` exited {proc.returncode}, the page says "
                    f"{command.exit}\n--- transcript ---\n" + "\n".join(transcript)
                )
            missing = find_lines(command.expected, output)
            if missing is not None:
                raise AssertionError(
                    f"{where}: `{command.command}` did not print {missing!r}\n"
                    "--- transcript ---\n" + "\n".join(transcript)
                )
    return transcript


def _tail(output: str, lines: int = 40) -> str:
    kept = output.rstrip().splitlines()
    if len(kept) > lines:
        kept = [f"... ({len(kept) - lines} lines)", *kept[-lines:]]
    return "\n".join("    " + line for line in kept)


def _docs_test_pages() -> list[Path]:
    # The marker must be the page's first line: the convention's own page shows
    # it inside a code block without opting in.
    return sorted(
        p
        for p in DOCS.rglob("*.md")
        if p.read_text(encoding="utf-8").partition("\n")[0].strip() == MARKER
    )


@pytest.mark.parametrize("page", _docs_test_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_tutorial_page_runs_as_written(page: Path, pytester: pytest.Pytester) -> None:
    failure = None
    try:
        transcript = run_page(page, pytester.path)
    except AssertionError as exc:  # the transcript says it all; the helper's traceback does not
        failure = str(exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    assert any(line.startswith(f"[{page.relative_to(ROOT)}:") for line in transcript)


def test_quickstart_is_opted_in() -> None:
    assert DOCS / "quickstart.md" in _docs_test_pages()


def test_quickstart_files_are_the_demo_files() -> None:
    # The demo (README's command) and the tutorial show the same code.
    blocks = parse_blocks((DOCS / "quickstart.md").read_text(encoding="utf-8"))
    titled = {b.attrs["title"]: b.body for b in blocks if "title" in b.attrs}
    assert set(titled) == {"pricing.py", "test_pricing.py"}
    for name, body in titled.items():
        assert body == (EXAMPLES / "quickstart" / name).read_text(encoding="utf-8"), name


@pytest.mark.parametrize("name", OWN_PAGES)
def test_python_blocks_parse(name: str) -> None:
    page = DOCS / name
    if not page.is_file():
        pytest.fail(f"{page} is missing")
    for block in parse_blocks(page.read_text(encoding="utf-8")):
        if block.lang == "python":
            source = expand_snippets(block.body)
            try:
                ast.parse(source)
            except SyntaxError as exc:
                pytest.fail(f"{name}:{block.line + (exc.lineno or 0)}: {exc.msg}")


# --------------------------------------------------------------------------- the convention


PAGE = """\
<!-- docs-test -->
# t

```python title="pkg/a.py"
X = 1
```

<!-- docs-test: skip -->
```console
$ pip install nothing
```

Some text.

<!-- docs-test: exit=3 -->
```console
$ echo one; echo two three; exit 3
one
two ... three
```

```console
$ python -c "import pkg.a; print(pkg.a.X + 1)"
2
```

    ```bash
    indented, shown only
    ```
"""


def test_parse_blocks_reads_titles_directives_and_indented_fences() -> None:
    blocks = parse_blocks(PAGE)
    assert [(b.lang, b.attrs.get("title"), b.directive) for b in blocks] == [
        ("python", "pkg/a.py", None),
        ("console", None, "skip"),
        ("console", None, "exit=3"),
        ("console", None, None),
        ("bash", None, None),
    ]
    assert blocks[0].body == "X = 1\n"
    assert blocks[4].body == "indented, shown only\n"
    assert parse_console(blocks[2]) == [
        Command("echo one; echo two three; exit 3", ["one", "two ... three"], 3)
    ]


def test_directive_applies_only_to_the_next_block() -> None:
    text = "<!-- docs-test: exit=1 -->\n\nprose\n\n```console\n$ true\n```\n"
    assert parse_blocks(text)[0].directive is None


def test_unclosed_fence_is_an_error_with_its_line() -> None:
    with pytest.raises(AssertionError, match="line 3: fence ``` is never closed"):
        parse_blocks("# t\n\n```python\nx = 1\n")


@pytest.mark.parametrize(
    ("expected", "output", "missing"),
    [
        (["a", "c"], "a\nb\nc\n", None),
        (["c", "a"], "a\nb\nc\n", "a"),  # order matters
        (["5 passed"], "===== 5 passed in 0.12s =====", None),
        (["x ... z"], "x y z", None),
        (["x ... z"], "z y x", "x ... z"),
        (["root['total']"], "root['total']: 1 → 2", None),  # brackets are literal
    ],
)
def test_find_lines(expected: list[str], output: str, missing: str | None) -> None:
    assert find_lines(expected, output) == missing


def test_run_page_runs_files_and_commands(pytester: pytest.Pytester) -> None:
    page = pytester.path / "page.md"
    page.write_text(PAGE, encoding="utf-8")
    transcript = run_page(page, pytester.path)
    assert (pytester.path / "pkg" / "a.py").read_text() == "X = 1\n"
    assert sum("$ " in entry for entry in transcript) == 2  # the skipped block did not run


def test_run_page_reports_a_wrong_exit_status(pytester: pytest.Pytester) -> None:
    page = pytester.path / "page.md"
    page.write_text("```console\n$ exit 4\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match=r"page\.md:1: `exit 4` exited 4, the page says 0"):
        run_page(page, pytester.path)


def test_run_page_reports_missing_output(pytester: pytest.Pytester) -> None:
    page = pytester.path / "page.md"
    page.write_text("```console\n$ echo hello\nhello\ngoodbye\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match=r"`echo hello` did not print 'goodbye'"):
        run_page(page, pytester.path)


def test_snippet_lines_are_expanded_from_the_examples_directory() -> None:
    body = expand_snippets('--8<-- "quickstart/pricing.py"\n')
    assert body == (EXAMPLES / "quickstart" / "pricing.py").read_text(encoding="utf-8")
    with pytest.raises(AssertionError, match=r"snippet 'nope\.py' not found"):
        expand_snippets('--8<-- "nope.py"\n')
