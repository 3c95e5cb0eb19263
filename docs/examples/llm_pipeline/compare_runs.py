"""Replay the recorded answers outside pytest and compare them with the recording.

``pytest_replay.replay`` runs the same machinery as ``pytest --replay``: the
model call is answered from the cassette, so this runs offline, in milliseconds.
"""

from pytest_replay import replay

from pipeline import answer

print(f"{'question':38} {'ms: recorded → new':>18}  {'tokens':>9}  {'model':>31}  verdict")
for item in replay(answer, cassette_dir="cassettes", limit=10):
    old, new = item.metadata, item.result or {}
    print(
        f"{item.inputs['question'][:38]:38} "
        f"{item.recorded_duration_ms:9.1f} → {item.duration_ms:6.2f}  "
        f"{old.get('tokens')!s:>3} → {new.get('tokens')!s:<3}  "
        f"{old.get('model')!s:>14} → {new.get('model')!s:<14}  "
        f"{item.status}"
    )
    for difference in item.diff:
        print(f"    {difference.line()}")
