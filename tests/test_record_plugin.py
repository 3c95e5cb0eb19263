"""``pytest --replay-record`` end to end (pytester), with and without pytest-xdist."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_replay import codec
from pytest_replay.cassette import Cassette, cassette_path

APP = '''
import asyncio
import dataclasses

from pytest_replay import replay_trace


@replay_trace(boundary=True)
def now():
    return 1700000000.0


@replay_trace
def add(a, b=1):
    return a + b


@replay_trace
def stamp(label):
    return f"{label}@{now()}"


@replay_trace
async def slow_double(x):
    await asyncio.sleep(0)
    return add(x, x)


@dataclasses.dataclass(frozen=True)
class Box:
    n: int

    @replay_trace
    def grow(self, by=1):
        return Box(self.n + by)

    @replay_trace
    @staticmethod
    def parse(text):
        return Box(int(text))

    @replay_trace
    @classmethod
    def empty(cls):
        return cls(0)


@replay_trace
def divide(a, b):
    return a / b
'''

TESTS = '''
import asyncio

import pytest

from app import Box, add, divide, slow_double, stamp

add(-1)  # at collection time: outside any test


@pytest.fixture(scope="session", autouse=True)
def warm():
    add(1000)


@pytest.mark.parametrize("x", range(8))
def test_add(x):
    assert add(x) == x + 1
    assert add(x) == x + 1  # the same call again: counted, not stored


def test_stamp():
    assert stamp("a").startswith("a@")


def test_async():
    assert asyncio.run(slow_double(3)) == 6


def test_box():
    assert Box(1).grow(2) == Box(3)
    assert Box.parse("7") == Box(7)
    assert Box.empty() == Box(0)


def test_divide_error():
    with pytest.raises(ZeroDivisionError):
        divide(1, 0)


def test_fails():
    add(555)
    assert False
'''

KEYS = ["app.Box.empty", "app.Box.grow", "app.Box.parse", "app.add", "app.divide",
        "app.slow_double", "app.stamp"]  # fmt: skip

XDIST = [
    pytest.param([], id="no-xdist"),
    pytest.param(["-n", "0"], id="n0"),
    pytest.param(["-n", "2"], id="n2"),
]


def read(directory: Path, key: str) -> list[dict[str, Any]]:
    raw = Cassette.open(cassette_path(directory, key)).records()
    return [codec.decode(r) for r in raw]  # type: ignore[misc]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(app=APP, test_app=TESTS)
    pytester.makeini("[pytest]\n")
    pytester.syspathinsert()  # decoding Box records imports app (pytester undoes both)
    return pytester


def run(pytester: pytest.Pytester, *args: str, subprocess: bool = True) -> pytest.RunResult:
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    return runner("-p", "no:cacheprovider", "--replay-record", *args)


def summary(result: pytest.RunResult) -> str:
    text = result.stdout.str()
    assert text.count("replay recording") == 1, text  # one section, on the controller only
    return text[text.index("replay recording") :]


@pytest.mark.parametrize("xdist", XDIST)
def test_record_every_form_and_rerecord_byte_identical(
    project: pytest.Pytester, xdist: list[str]
) -> None:
    # Reference: an in-process run without xdist and without durations.
    reference = run(project, "--replay-dir=ref", "--replay-record-durations=off", subprocess=False)
    reference.assert_outcomes(passed=12, failed=1)

    private_tmp = project.mkdir("tmp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(private_tmp))  # where the shards go
        result = run(project, *xdist, "--replay-record-durations=off")
    result.assert_outcomes(passed=12, failed=1)
    # workers print nothing of their own, and their shards are gone
    assert "[gw" not in result.stdout.str().split("replay recording")[1]
    assert list(private_tmp.iterdir()) == []
    cassettes = project.path / "cassettes"
    assert snapshot(cassettes) == snapshot(project.path / "ref")  # whatever -n is
    assert sorted(p.name for p in cassettes.iterdir()) == [f"{k}.cassette" for k in KEYS]
    text = summary(result)
    assert f"cassettes: {cassettes} (mode: new)" in text
    assert "functions recorded: 7" in text
    assert "records: 17 new, 0 unchanged, 0 changed" in text
    assert "calls from failed tests, not recorded: 1" in text
    assert "calls seen again, not stored twice: " in text

    adds = read(cassettes, "app.add")
    # collection-time call first, then by test position and call order; the
    # failed test's add(555) is not there
    assert [r["args"] for r in adds] == [
        [-1, 1], [1000, 1], *[[x, 1] for x in range(8)], [3, 3],
    ]  # fmt: skip
    assert adds[0]["meta"] == {}  # outside any test: no node id
    assert adds[1]["meta"] == {"nodeid": "test_app.py::test_add[0]"}
    (stamped,) = read(cassettes, "app.stamp")
    assert stamped["children"][0]["key"] == "app.now"
    assert stamped["children"][0]["result"] == 1700000000.0
    (doubled,) = read(cassettes, "app.slow_double")
    assert (doubled["result"], doubled["children"][0]["args"]) == (6, [3, 3])
    from app import Box  # type: ignore[import-not-found]

    assert read(cassettes, "app.Box.grow")[0]["args"] == [Box(1), 2]
    assert read(cassettes, "app.Box.empty")[0]["args"] == []
    (error,) = read(cassettes, "app.divide")
    assert error["error"]["type"] == "builtins.ZeroDivisionError"
    assert not (project.path / "app.now.cassette").exists()

    # Recording again, with durations this time, changes no byte.
    before = snapshot(cassettes)
    again = run(project, *xdist)
    assert "records: 0 new, 17 unchanged, 0 changed" in summary(again)
    assert snapshot(cassettes) == before


def test_failed_tests_are_recorded_with_record_failed(project: pytest.Pytester) -> None:
    result = run(project, "--replay-record-failed", subprocess=False)
    assert "calls from failed tests" not in summary(result)
    assert [555, 1] in [r["args"] for r in read(project.path / "cassettes", "app.add")]


def test_new_mode_keeps_changed_records_and_rewrite_replaces(project: pytest.Pytester) -> None:
    run(project, subprocess=False)
    cassettes = project.path / "cassettes"
    old = read(cassettes, "app.add")
    # The code changes: add now returns one more, and test_add[5..7] are gone.
    project.makepyfile(app=APP.replace("return a + b\n", "return a + b + 1\n"))
    project.makepyfile(
        test_app="""
        import asyncio
        import pytest
        from app import add, slow_double

        add(-1)

        @pytest.fixture(scope="session", autouse=True)
        def warm():
            add(1000)

        @pytest.mark.parametrize("x", range(5))
        def test_add(x):
            add(x)

        def test_async():
            asyncio.run(slow_double(3))
        """
    )
    kept = run(project, subprocess=False)
    text = summary(kept)
    assert "records: 0 new, 0 unchanged, 9 changed (kept as recorded; " in text
    assert "--replay-record-mode=rewrite replaces them)" in text
    assert read(cassettes, "app.add") == old
    untouched = snapshot(cassettes)
    rewritten = run(project, "--replay-record-mode=rewrite", subprocess=False)
    text = summary(rewritten)
    assert "records: 0 new, 0 unchanged, 9 changed (rewritten), 3 removed" in text
    new = read(cassettes, "app.add")
    assert [r["args"] for r in new] == [[-1, 1], [1000, 1], *[[x, 1] for x in range(5)], [3, 3]]
    assert [r["result"] for r in new][:3] == [1, 1002, 2]
    after = snapshot(cassettes)
    # cassettes of functions not called in this run are left as they were
    assert after["app.stamp.cassette"] == untouched["app.stamp.cassette"]
    assert after["app.add.cassette"] != untouched["app.add.cassette"]


def test_max_records_precedence_command_line_then_decorator_then_ini(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        app="""
        from pytest_replay import replay_trace

        @replay_trace
        def plain(x):
            return x

        @replay_trace(max_records=4)
        def capped(x):
            return x
        """,
        test_app="""
        from app import capped, plain

        def test_many():
            for x in range(10):
                plain(x)
                capped(x)
        """,
    )
    pytester.makeini("[pytest]\nreplay_max_records = 2\n")
    result = run(pytester, subprocess=False)
    assert "calls over max_records (2, 4), not stored: 14" in summary(result)
    assert [r["args"][0] for r in read(pytester.path / "cassettes", "app.plain")] == [0, 1]
    assert len(read(pytester.path / "cassettes", "app.capped")) == 4
    run(pytester, "--replay-max-records=6", "--replay-record-mode=rewrite", subprocess=False)
    assert len(read(pytester.path / "cassettes", "app.plain")) == 6
    assert len(read(pytester.path / "cassettes", "app.capped")) == 6


def test_record_order_is_collection_order_not_execution_order(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        app="""
        from pytest_replay import replay_trace

        @replay_trace
        def seen(x):
            return x
        """,
        test_app="""
        import pytest
        from app import seen

        @pytest.mark.parametrize("x", range(5))
        def test_seen(x):
            seen(x)
        """,
        conftest="""
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(items):
            items.reverse()  # run in reverse, like a random-order plugin might
        """,
    )
    run(pytester, subprocess=False).assert_outcomes(passed=5)
    assert [r["args"][0] for r in read(pytester.path / "cassettes", "app.seen")] == list(range(5))


def test_trace_and_boundary_targets_from_ini_and_command_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        vendor="""
        def fmt(sql):
            return sql.upper()

        class Client:
            def get(self, url):
                return {"url": url, "status": 200}

        def fetch(url):
            return Client().get(url)["status"]
        """,
        test_vendor="""
        import vendor

        def test_vendor():
            assert vendor.fmt("select 1") == "SELECT 1"
            assert vendor.fetch("http://x") == 200
            assert hasattr(vendor.fmt, "__replay_spec__")
        """,
    )
    pytester.makeini("[pytest]\nreplay_trace = vendor.fmt\n")
    pytester.syspathinsert()
    result = run(
        pytester, "--replay-trace=vendor:fetch", "--replay-boundary=vendor:Client.get",
        subprocess=False,
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    cassettes = pytester.path / "cassettes"
    assert read(cassettes, "vendor.fmt")[0]["result"] == "SELECT 1"
    (fetched,) = read(cassettes, "vendor.fetch")
    assert fetched["children"][0]["key"] == "vendor.Client.get"
    assert fetched["children"][0]["result"] == {"url": "http://x", "status": 200}
    assert not cassette_path(cassettes, "vendor.Client.get").exists()
    import vendor  # type: ignore[import-not-found]

    assert not hasattr(vendor.fmt, "__replay_spec__")  # restored at unconfigure


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--replay-trace=nowhere_xyz:f"], "", "--replay-trace/replay_trace: trace target "
         "'nowhere_xyz:f': cannot import 'nowhere_xyz'"),
        (["--replay-boundary=os:no_such_fn"], "", "trace target 'os:no_such_fn': os:no_such_fn "
         "not found"),
        ([], "replay_trace = os.path:nope\n", "'os.path:nope'"),
        (["--replay-record"], "replay_record_mode = append\n", "ini replay_record_mode: "
         "'append' is not one of new, rewrite"),
        (["--replay-record"], "replay_max_records = lots\n", "ini replay_max_records: 'lots' is "
         "not a whole number"),
        (["--replay-record", "--replay-max-records=0"], "", "--replay-max-records must be at "
         "least 1, got 0"),
        (["--replay-record"], "replay_record_durations = maybe\n", "ini replay_record_durations: "
         "'maybe' is not one of on, off"),
        (["--replay-record"], "replay_lock_timeout = soon\n", "replay_lock_timeout: could not "
         "convert string to float: 'soon'"),
    ],
)  # fmt: skip
def test_configuration_errors_are_usage_errors_naming_the_setting(
    pytester: pytest.Pytester, args: list[str], ini: str, message: str
) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    pytester.makeini("[pytest]\n" + ini)
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_replay_dir_relative_to_invocation_dir_or_rootdir(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        app="from pytest_replay import replay_trace\n\n@replay_trace\ndef f(x):\n    return x\n",
        test_app="from app import f\n\ndef test_f():\n    f(1)\n",
    )
    pytester.makeini("[pytest]\nreplay_dir = recorded/here\n")
    sub = pytester.mkdir("sub")
    run(pytester, subprocess=False)
    assert cassette_path(pytester.path / "recorded" / "here", "app.f").is_file()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)
        pytester.runpytest(
            "-p", "no:cacheprovider", "--replay-record", "--replay-dir=mine", "--rootdir",
            str(pytester.path), str(pytester.path),
        )  # fmt: skip
    assert cassette_path(sub / "mine", "app.f").is_file()


def test_write_failure_fails_the_run_with_one_error_and_keeps_old_cassettes(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    run(project, subprocess=False)
    cassettes = project.path / "cassettes"
    before = snapshot(cassettes)

    def denied(self: Any, records: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self.path))

    monkeypatch.setattr(Cassette, "append", denied)
    project.makepyfile(test_more="from app import add\n\ndef test_more():\n    add(77)\n")
    result = run(project, subprocess=False)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    errors = [line for line in result.stdout.lines if line.startswith("ERROR: ")]
    assert errors == [
        f"ERROR: cannot write cassettes to {cassettes}: Permission denied "
        f"({cassettes / 'app.add.cassette'}); the previous cassettes are left intact"
    ]
    assert snapshot(cassettes) == before


def test_a_damaged_cassette_is_reported_and_left_alone(project: pytest.Pytester) -> None:
    run(project, subprocess=False)
    path = cassette_path(project.path / "cassettes", "app.add")
    damaged = bytearray(path.read_bytes())
    damaged[-5] ^= 0x01
    path.write_bytes(bytes(damaged))
    project.makepyfile(test_more="from app import add\n\ndef test_more():\n    add(77)\n")
    result = run(project, subprocess=False)
    text = summary(result)
    assert f"ERROR: {path}" in text
    assert "its new records were not written" in text
    assert path.read_bytes() == bytes(damaged)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_not_recording_leaves_no_trace(project: pytest.Pytester) -> None:
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=12, failed=1)
    assert "replay recording" not in result.stdout.str()
    assert not (project.path / "cassettes").exists()


def test_two_independent_runs_on_one_directory_lose_and_duplicate_nothing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        app="from pytest_replay import replay_trace\n\n@replay_trace\ndef f(x):\n    return x\n",
        test_a="from app import f\n\ndef test_a():\n    for x in range(0, 300):\n        f(x)\n",
        test_b="from app import f\n\ndef test_b():\n    for x in range(200, 500):\n        f(x)\n",
    )
    env = {**os.environ, "PYTHONPATH": str(pytester.path)}
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--replay-record",
               "--replay-max-records=1000", "--rootdir", str(pytester.path)]  # fmt: skip
    runs = [
        subprocess.Popen([*command, name], cwd=pytester.path, env=env, stdout=subprocess.PIPE)
        for name in ("test_a.py", "test_b.py")
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in runs]
    assert [process.returncode for process in runs] == [0, 0], outputs
    args = [r["args"][0] for r in read(pytester.path / "cassettes", "app.f")]
    assert sorted(args) == list(range(500))  # each once: nothing lost, nothing twice
    assert not (pytester.path / "cassettes" / ".pytest-replay.lock").exists()


def test_secrets_are_redacted_and_counted_unless_allowed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        app=textwrap.dedent(
            """
            from pytest_replay import replay_trace

            @replay_trace
            def login(user, password, headers):
                return {"token": "tok-" + user, "ok": True}
            """
        ),
        test_app=textwrap.dedent(
            """
            from app import login

            def test_login():
                login("bob", "hunter2-PW", {"Authorization": "Bearer abcdefghijkl0123"})
            """
        ),
    )
    result = run(pytester, subprocess=False)
    assert "secrets redacted: 3 (built-in scanner" in summary(result)
    data = b"".join(p.read_bytes() for p in (pytester.path / "cassettes").iterdir())
    for secret in (b"hunter2-PW", b"abcdefghijkl0123", b"tok-bob"):
        assert secret not in data
    allowed = run(pytester, "--replay-allow-secrets", "--replay-dir=open", subprocess=False)
    assert "secrets redacted: 0" in summary(allowed)
    data = b"".join(p.read_bytes() for p in (pytester.path / "open").iterdir())
    assert b"hunter2-PW" in data
    assert b"abcdefghijkl0123" in data
