"""A deterministic stand-in for a chat-completion client, so the example runs offline.

It answers by picking the context sentence that shares the most words with the
question, counts "tokens" as words, and takes a little wall time like a real
model would. Same prompt, same model: same answer, every time.
"""

from __future__ import annotations

import os
import re
import time

WORD = re.compile(r"[a-z0-9]+")


class FakeClient:
    def __init__(self, latency_s: float = 0.02) -> None:
        self.latency_s = latency_s

    def complete(self, *, model: str, prompt: str) -> dict:
        if os.environ.get("FAKE_LLM_OFFLINE"):
            # Stands in for a network error, so a replay can show it never calls out.
            raise ConnectionError("FAKE_LLM_OFFLINE is set: the model service is unreachable")
        time.sleep(self.latency_s)
        question = prompt.rsplit("Question:", 1)[-1]
        wanted = set(WORD.findall(question.lower()))
        context = prompt.split("Context:", 1)[-1].split("Question:", 1)[0]
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n", context) if s.strip()]
        best = max(sentences, key=lambda s: len(wanted & set(WORD.findall(s.lower()))), default="")
        text = best.lstrip("- ").strip() or "I don't know."
        return {
            "model": model,
            "text": text,
            "usage": {
                "prompt_tokens": len(WORD.findall(prompt.lower())),
                "completion_tokens": len(WORD.findall(text.lower())),
            },
        }
