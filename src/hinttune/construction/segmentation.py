"""Stage 3, segmentation: split a think trace's reasoning into episodes.

``keywords`` (the paper): a new episode starts just before each reflection keyword, matched
case-insensitively, as whole words/phrases by default (so "await" does not split) or as raw
substrings like the official scripts. ``paragraphs``: at blank lines. ``windows``: fixed
windows of about N tokens cut at the next word boundary, for traces with few keywords (small models). Empty pieces are dropped and
only the first ``max_episodes`` are kept. Episodes are verbatim slices of the reasoning, so
the prefix P_k = e_1 + ... + e_k is always a prefix of the trace.
"""

from __future__ import annotations

import re
from typing import Any

from hinttune.core.config import DEFAULT_KEYWORDS, OFFICIAL_KEYWORDS, SegmentConfig


def keyword_pattern(keywords: list[str], whole_words: bool, longest_first: bool = True) -> re.Pattern[str]:
    # Longest first, so "let me reconsider" wins over a shorter keyword at the same place (a
    # match consumes its text, so which one wins decides where the next split can be); the
    # official scripts keep the config's order. Whole-word matching also lets a phrase span
    # any whitespace; substring matching is the official scripts' plain ``in`` test, so it
    # stays literal.
    escaped = [re.escape(k).replace(r"\ ", r"\s+") if whole_words else re.escape(k) for k in keywords]
    body = "|".join(sorted(escaped, key=len, reverse=True) if longest_first else escaped)
    return re.compile(rf"\b(?:{body})\b" if whole_words else f"(?:{body})", re.IGNORECASE)


def _cut(text: str, starts: list[int]) -> list[str]:
    bounds = sorted({0, *starts, len(text)})
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def split_keywords(text: str, keywords: list[str], whole_words: bool = True,
                   longest_first: bool = True) -> list[str]:
    return _cut(text, [m.start() for m in keyword_pattern(keywords, whole_words, longest_first).finditer(text)])


def split_paragraphs(text: str) -> list[str]:
    # a piece ends after its blank line(s), so the pieces concatenate back to the text
    return _cut(text, [m.end() for m in re.finditer(r"\n\s*\n", text)])


def split_windows(text: str, window: int, tokenizer: Any = None) -> list[str]:
    """Windows of ``window`` tokens (with a tokenizer's offsets) or words (without one)."""
    words = [m.start() for m in re.finditer(r"\S+", text)]
    if tokenizer is None:
        return _cut(text, words[window::window])
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    # a window ends at the first word that starts at or after its last token, so no hint ends
    # inside a number or a word ("60 miles per hour is 1" | "00 feet per second")
    starts, w = [], 0
    for i in range(window, len(offsets), window):
        while w < len(words) and words[w] < offsets[i][0]:
            w += 1
        if w < len(words):
            starts.append(words[w])
    return _cut(text, starts)


def episodes(reasoning: str, cfg: SegmentConfig, official: bool = False,
             tokenizer: Any = None) -> list[str]:
    if cfg.method == "keywords":
        keywords = cfg.keywords if cfg.keywords is not None else (
            OFFICIAL_KEYWORDS if official else DEFAULT_KEYWORDS)
        whole = cfg.whole_words if cfg.whole_words is not None else not official
        pieces = split_keywords(reasoning, keywords, whole, longest_first=not official)
    elif cfg.method == "paragraphs":
        pieces = split_paragraphs(reasoning)
    else:
        pieces = split_windows(reasoning, cfg.window_tokens, tokenizer)
    kept = [p for p in pieces if p.strip()]
    return kept[:cfg.max_episodes]


def prefix(pieces: list[str], k: int) -> str:
    """P_k: the first k episodes, verbatim (P_0 is empty)."""
    return "".join(pieces[:k])



def trace_episodes(think_output: str, cfg: SegmentConfig, official: bool = False,
                   tokenizer: Any = None) -> list[str]:
    """Episodes of a think model's output: its reasoning, stripped as the official scripts
    do (so P_1 starts at the first word), then split. The official scripts' prefix search
    reads the reasoning up to the *last* ``</think>``; the default stops at the first, where
    the answer starts."""
    from hinttune.core.reasoning import split_think

    reasoning = split_think(think_output, last_close=official).reasoning
    return episodes(reasoning.strip(), cfg, official, tokenizer)
