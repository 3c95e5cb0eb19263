"""Retrieval + prompt + model call: a small question-answering pipeline.

The model call is a *boundary*: while recording, its prompt and reply are stored
inside the record of ``answer()``; while replaying, the reply comes from the
cassette and the client is never called. ``metadata`` stores the model name and
the token counts with every recorded answer.
"""

from __future__ import annotations

import re

from fake_llm import FakeClient
from pytest_replay import replay_trace

MODEL = "fake-gpt-small"
CLIENT = FakeClient()

DOCUMENTS = {
    "returns": "Items can be returned within 30 days. Refunds go to the original payment method.",
    "shipping": "Standard shipping takes 3 to 5 working days. Express shipping takes 1 day.",
    "warranty": "Every device has a 2 year warranty. The warranty does not cover water damage.",
    "support": "Support answers by email within 24 hours. Phone support is open on weekdays.",
}

WORD = re.compile(r"[a-z0-9]+")


@replay_trace
def retrieve(question: str, k: int = 2) -> list[str]:
    """The names of the ``k`` documents sharing the most words with the question."""
    wanted = set(WORD.findall(question.lower()))
    scored = sorted(
        DOCUMENTS,
        key=lambda name: (-len(wanted & set(WORD.findall(DOCUMENTS[name].lower()))), name),
    )
    return scored[:k]


def build_prompt(question: str, sources: list[str]) -> str:
    context = "\n".join(f"- {DOCUMENTS[name]}" for name in sources)
    return f"Answer from the context only.\nContext:\n{context}\nQuestion: {question}"


@replay_trace(boundary=True)
def complete(prompt: str, model: str) -> dict:
    """The model call: never runs during a replay."""
    return CLIENT.complete(model=model, prompt=prompt)


def usage(call):
    """Metadata stored with each recorded answer: model and token counts."""
    if call.error is not None:
        return None
    return {"model": call.result["model"], "tokens": call.result["tokens"]}


@replay_trace(metadata=usage)
def answer(question: str) -> dict:
    sources = retrieve(question)
    reply = complete(build_prompt(question, sources), model=MODEL)
    tokens = reply["usage"]["prompt_tokens"] + reply["usage"]["completion_tokens"]
    return {
        "answer": reply["text"],
        "sources": sources,
        "model": reply["model"],
        "tokens": tokens,
    }
