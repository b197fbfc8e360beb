"""Where a think model's reasoning is in its output: the text inside ``<think>...</think>``.
With no ``<think>`` (templates such as Qwen3-Thinking-2507 put it in the prompt) the reasoning
starts at the beginning; with no ``</think>`` (cut by the length limit) it runs to the end.
The reasoning ends at the first ``</think>``; ``last_close`` ends it at the last one instead,
as the official scripts' prefix search does (their merge.py cuts at the first).

The official merge.py reads a Full-Hint target differently (``split_think_official``): the
reasoning is everything before the first ``</think>`` of the whole output, after a ``<think>``
only if one comes before that ``</think>``. The two differ on malformed traces only:
``A</think>\n<think>\nB</think>C`` is reasoning "\nB" here and "A" there, and ``X</think>Y<think>Z``
has no closed reasoning here (no ``</think>`` after its ``<think>``) and reasoning "X" there."""

from __future__ import annotations

from dataclasses import dataclass

OPEN, CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class ThinkSplit:
    reasoning: str
    answer: str
    opened: bool  # an explicit <think> was present
    closed: bool  # an explicit </think> was present


def split_think(text: str, last_close: bool = False) -> ThinkSplit:
    start = text.find(OPEN)
    body = text[start + len(OPEN):] if start >= 0 else text
    end = body.rfind(CLOSE) if last_close else body.find(CLOSE)
    if end < 0:
        return ThinkSplit(body, "", start >= 0, False)
    return ThinkSplit(body[:end], body[end + len(CLOSE):], start >= 0, True)


def split_think_official(text: str) -> ThinkSplit:
    """merge.py's cut of a Full-Hint target (``--policy official``)."""
    end = text.find(CLOSE)
    if end < 0:
        return ThinkSplit(text, "", OPEN in text, False)
    head = text[:end]
    start = head.find(OPEN)
    return ThinkSplit(head[start + len(OPEN):] if start >= 0 else head, text[end + len(CLOSE):].strip(),
                      start >= 0, True)


def graded_part(text: str) -> str:
    """The part of an output that holds the answer: after the last </think>, if any."""
    return text.rsplit(CLOSE, 1)[1] if CLOSE in text else text
