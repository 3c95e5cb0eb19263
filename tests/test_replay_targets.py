"""Replay calls only traced code: a record's ``target`` is data anyone can edit.

Every refusal is checked by a side effect that would happen if the target
were called (a file deleted, a file created) and must not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_replay import codec, replay, trace
from pytest_replay.cassette import Cassette, cassette_path
from pytest_replay.record import Record, record_id
from pytest_replay.session import SessionError, SessionReplayer, capture_sessions, trace_class

XDIST = pytest.mark.parametrize(
    "xdist", [[], ["-n", "0"], ["-n", "2"]], ids=["no-xdist", "n0", "n2"]
)


def crafted(
    directory: Path, key: str, target: str, args: list[Any], result: Any = None, *more: Any
) -> Path:
    """A cassette of call records naming ``target``, as a hostile editor would write it.

    ``more``: further ``(target, args, result)`` records of the same key.
    """
    records = []
    for target_, args_, result_ in [(target, args, result), *more]:
        rid = record_id(key, codec.dumps([args_, {}]))
        records.append(Record(rid, key, target_, args_, {}, result=result_).to_map())
    path = cassette_path(directory, key)
    Cassette.create(path, key, records)
    return path


@pytest.fixture(autouse=True)
def importable(request: pytest.FixtureRequest) -> None:
    # the project's own modules (helpers.py, shop.py ...) import from the rootdir
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester").makeini("[pytest]\npythonpath = .\n")


# --------------------------------------------------------------------------- pytest --replay


@XDIST
def test_untraced_targets_are_refused_and_never_called(
    pytester: pytest.Pytester, xdist: list[str]
) -> None:
    outside = pytester.path.parent / f"{pytester.path.name}-outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("precious")
    tree = outside / "tree"
    (tree / "sub").mkdir(parents=True)
    created = outside / "created-by-subprocess"
    cassettes = pytester.path / "cassettes"
    crafted(cassettes, "evil.remove", "os:remove", [str(victim)])
    crafted(cassettes, "evil.rmtree", "shutil:rmtree", [str(tree)])
    crafted(cassettes, "evil.run", "subprocess:run", [["touch", str(created)]])
    crafted(cassettes, "evil.system", "os:system", [f"touch {created}"])
    result = pytester.runpytest("--replay", "-p", "no:cacheprovider", *xdist)
    result.assert_outcomes(failed=4)
    assert victim.read_text() == "precious"
    assert (tree / "sub").is_dir()
    assert not created.exists()
    for target in ("os:remove", "shutil:rmtree", "subprocess:run", "os:system"):
        result.stdout.fnmatch_lines(
            [f"*target {target} is not traced by pytest-replay; refusing to call it*"]
        )
    result.stdout.fnmatch_lines(["*fix:*re-record, or trace it with @replay_trace(key=*"])
    # not stale: --replay-prune never removes them as "gone", and --replay-no-strict skips them
    skipped = pytester.runpytest("--replay", "--replay-no-strict", "-p", "no:cacheprovider")
    skipped.assert_outcomes(skipped=4)
    assert victim.read_text() == "precious"
    assert not created.exists()


def test_an_untraced_function_of_the_users_own_code_is_refused(pytester: pytest.Pytester) -> None:
    marker = pytester.path / "called.txt"
    pytester.makepyfile(
        helpers=f"""
        from pathlib import Path

        IMPORTED = True

        def wipe(name):
            Path({str(marker)!r}).write_text(name)
            return name
        """
    )
    crafted(pytester.path / "cassettes", "helpers.wipe", "helpers:wipe", ["x"], result="x")
    result = pytester.runpytest("--replay", "-p", "no:cacheprovider", "-p", "pytester")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*target helpers:wipe is not traced by pytest-replay*"])
    assert not marker.exists()
    # the same function traced from the command line is replayed (and so called)
    traced = pytester.runpytest("--replay", "--replay-trace=helpers:wipe", "-p", "no:cacheprovider")
    traced.assert_outcomes(passed=1)
    assert marker.read_text() == "x"


def test_ini_replay_trace_makes_a_target_replayable(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npythonpath = .\nreplay_trace = helpers:double\n")
    pytester.makepyfile(helpers="def double(x):\n    return 2 * x\n")
    crafted(pytester.path / "cassettes", "helpers.double", "helpers:double", [21], result=42)
    pytester.runpytest("--replay", "-p", "no:cacheprovider").assert_outcomes(passed=1)


TRACED = """
from pathlib import Path

from pytest_replay import replay_trace


@replay_trace
def double(x):
    return 2 * x


@replay_trace(key="shop.triple")
def triple(x):
    return 3 * x


@replay_trace(boundary=True)
def charge(amount):
    Path("charged.txt").write_text(str(amount))
    return "ok"
"""


def test_traced_targets_replay(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shop=TRACED)
    cassettes = pytester.path / "cassettes"
    crafted(cassettes, "shop.double", "shop:double", [2], result=4)
    crafted(cassettes, "shop.triple", "shop:triple", [2], result=6)
    pytester.runpytest("--replay", "-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_a_target_traced_under_another_key_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shop=TRACED)
    crafted(pytester.path / "cassettes", "not.its.key", "shop:double", [2], result=4)
    result = pytester.runpytest("--replay", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*target shop:double is traced under key 'shop.double', not under this record's key "
         "'not.its.key'; refusing to call it"]
    )  # fmt: skip


def test_a_traced_boundary_is_never_called(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shop=TRACED)
    # a call record of a boundary without the boundary flag (hand-made, or recorded
    # before the function became a boundary): running it would charge a card
    crafted(pytester.path / "cassettes", "shop.charge", "shop:charge", [100], result="ok")
    result = pytester.runpytest("--replay", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*target shop:charge is traced as a boundary (boundary=True)*"])
    assert not (pytester.path / "charged.txt").exists()


def test_registry_fallback_runs_the_function_registered_under_the_key(
    pytester: pytest.Pytester,
) -> None:
    # The recorded path is gone (the code moved); a conftest imports the module
    # where the function now lives, traced under the same key.
    # (its own key: pytester runs share this process's registry with other tests)
    pytester.makepyfile(moved=TRACED.replace('"shop.triple"', '"moving.triple"'))
    pytester.makeconftest("import moved\n")
    # ... and a recorded path that still exists but is not traced: the registered
    # function runs, never the untraced one.
    marker = pytester.path / "untraced-called.txt"
    pytester.makepyfile(
        legacy=f"""
        from pathlib import Path

        def triple(x):
            Path({str(marker)!r}).write_text("called")
            return 3 * x
        """
    )
    crafted(
        pytester.path / "cassettes",
        "moving.triple",
        "old_shop_module:triple",
        [5],
        15,
        ("legacy:triple", [7], 21),
    )
    pytester.runpytest("--replay", "-p", "no:cacheprovider").assert_outcomes(passed=2)
    assert not marker.exists()


# --------------------------------------------------------------------------- replay()


@pytest.fixture
def unregister() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for fn in made:
        trace._unregister(fn.__replay_spec__)


def test_programmatic_replay_refuses_untraced_targets(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    crafted(tmp_path / "cassettes", "evil", "os:remove", [str(victim)])
    (result,) = replay("evil", tmp_path / "cassettes")
    assert result.status == "unreplayable"
    assert "target os:remove is not traced by pytest-replay; refusing to call it" in result.text
    assert victim.read_text() == "precious"


def test_programmatic_replay_uses_the_registry_fallback(
    tmp_path: Path, unregister: list[Any]
) -> None:
    def quadruple(x: int) -> int:
        return 4 * x

    fn = trace.replay_trace(key="tests.targets.quadruple")(quadruple)
    unregister.append(fn)
    crafted(tmp_path, "tests.targets.quadruple", "no_such_module_xyz:quadruple", [3], result=12)
    (result,) = replay(fn, tmp_path)
    assert result.status == "matched"
    assert result.result == 12


def test_programmatic_replay_of_a_traced_function(tmp_path: Path, unregister: list[Any]) -> None:
    calls: list[int] = []

    def square(x: int) -> int:
        calls.append(x)
        return x * x

    fn = trace.replay_trace(key="tests.targets.square")(square)
    unregister.append(fn)
    with trace.recording(tmp_path):
        fn(5)
    (result,) = replay(fn, tmp_path)
    assert result.status == "matched"
    assert calls == [5, 5]  # recorded once, replayed once


# --------------------------------------------------------------------------- sessions


class Vault:
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.items: list[str] = []

    def put(self, item: str) -> int:
        self.items.append(item)
        return len(self.items)

    def _wipe(self, path: str) -> None:
        Path(path).write_text("wiped")


trace_class(Vault)
VAULT_KEY = f"{__name__}.Vault"


def vault_record() -> dict[str, Any]:
    with capture_sessions() as capture:
        Vault("ann").put("a")
    (record,) = capture.records()
    return record


def test_a_traced_session_class_replays() -> None:
    assert SessionReplayer(vault_record()).replay_all().ok


def popen_record(created: Path) -> dict[str, Any]:
    """A crafted session record whose constructor would run ``touch created``."""
    return dict(
        vault_record(),
        key="evil.popen",
        target="subprocess:Popen",
        args=[["touch", str(created)]],
        children=[],
    )


def test_a_session_record_naming_an_untraced_class_is_refused(tmp_path: Path) -> None:
    created = tmp_path / "created-by-popen"
    record = popen_record(created)
    with pytest.raises(SessionError, match="target subprocess:Popen is not a class traced by"):
        SessionReplayer(record)
    assert not created.exists()


def test_a_session_class_traced_under_another_key_is_refused() -> None:
    record = dict(vault_record(), key="some.other.key")
    with pytest.raises(SessionError, match="refusing to construct it"):
        SessionReplayer(record)


def test_a_session_step_calling_a_private_method_is_refused(tmp_path: Path) -> None:
    record = vault_record()
    wiped = tmp_path / "wiped"
    record["children"][0] = dict(record["children"][0], key=f"{VAULT_KEY}._wipe", args=[str(wiped)])
    with pytest.raises(SessionError, match=r"step 0 calls Vault\._wipe, which is not a recorded"):
        SessionReplayer(record)
    assert not wiped.exists()


def test_pytest_replay_refuses_a_crafted_session_record(pytester: pytest.Pytester) -> None:
    created = pytester.path.parent / f"{pytester.path.name}-created"
    record = popen_record(created)
    record["id"] = record_id("evil.popen", codec.dumps([record["args"], {}]))
    Cassette.create(
        cassette_path(pytester.path / "cassettes", "evil.popen"), "evil.popen", [record]
    )
    result = pytester.runpytest("--replay", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*target subprocess:Popen is not a class traced by pytest-replay*"]
    )
    assert not created.exists()
