import pytest

from pipeline import answer

QUESTIONS = [
    "How long does express shipping take?",
    "Can I get a refund after 30 days?",
    "Does the warranty cover water damage?",
    "When is phone support open?",
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_answers_cite_their_sources(question):
    result = answer(question)
    assert result["answer"]
    assert result["sources"]
