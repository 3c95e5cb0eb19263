"""Hook specifications of pytest-replay (registered by the plugin in ``pytest_addhooks``).

Implement them in a ``conftest.py`` or a plugin to teach the codec types it
does not know. Both are ``firstresult``: the first implementation that
returns something other than ``None`` wins. Outside pytest, use
``pytest_replay.register_type`` instead. See docs/codec.md.

This module imports pluggy only, so it stays importable without pytest.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(firstresult=True)
def pytest_replay_encode(value: Any) -> tuple[str, Any] | None:
    """Encode ``value`` for a cassette, or return ``None`` to leave it to others.

    Return ``(tag, data)``: ``tag`` is a stable non-empty string naming the
    type on disk and ``data`` is any value the codec can encode (it is
    encoded in turn). Called only for values the codec has no built-in or
    registered support for.
    """
    return None


@hookspec(firstresult=True)
def pytest_replay_decode(tag: str, data: Any) -> Any | None:
    """Rebuild the value written as ``(tag, data)``, or return ``None`` if ``tag`` is not yours.

    ``data`` is already decoded. A tag nobody decodes makes loading fail
    with ``CodecError`` naming the tag.
    """
    return None
