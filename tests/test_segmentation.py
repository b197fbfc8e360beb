import pytest

from hinttune.construction.segmentation import (
    episodes,
    prefix,
    split_keywords,
    split_paragraphs,
    split_windows,
)
from hinttune.core.config import DEFAULT_KEYWORDS, OFFICIAL_KEYWORDS, SegmentConfig
from hinttune.core.reasoning import split_think


@pytest.mark.parametrize("text, reasoning, answer, closed", [
    ("<think>\nA. Wait, B.\n</think>\n\nThe answer is 3.", "\nA. Wait, B.\n", "\n\nThe answer is 3.", True),
    ("A. Wait, B.\n</think>\n\nDone.", "A. Wait, B.\n", "\n\nDone.", True),   # no <think>: from the start
    ("<think>\nA. Wait, B. Hmm", "\nA. Wait, B. Hmm", "", False),             # no </think>: to the end
    ("plain answer", "plain answer", "", False),
])
def test_where_the_reasoning_is(text, reasoning, answer, closed):
    split = split_think(text)
    assert (split.reasoning, split.answer, split.closed) == (reasoning, answer, closed)


def test_split_just_before_each_keyword_case_insensitive():
    text = "Start. Wait, no. HMM, maybe. Actually yes. Let me reconsider: Hold on. On second thought ok."
    assert split_keywords(text, DEFAULT_KEYWORDS) == [
        "Start. ", "Wait, no. ", "HMM, maybe. ", "Actually yes. ", "Let me reconsider: ",
        "Hold on. ", "On second thought ok."]


def test_keywords_inside_words_split_only_in_official_mode():
    text = "I await it. Hmmm. Wait."
    assert split_keywords(text, DEFAULT_KEYWORDS, whole_words=True) == ["I await it. Hmmm. ", "Wait."]
    assert split_keywords(text, DEFAULT_KEYWORDS, whole_words=False) == [
        "I a", "wait it. ", "Hmmm. ", "Wait."]


def test_phrases_span_any_whitespace_when_matching_whole_words():
    assert split_keywords("x hold\n on y", ["hold on"]) == ["x ", "hold\n on y"]
    assert split_keywords("x hold\n on y", ["hold on"], whole_words=False) == ["x hold\n on y"]


def test_empty_pieces_are_dropped_and_the_cap_applies():
    cfg = SegmentConfig(max_episodes=3)
    assert episodes("Wait. Wait. Wait. Wait. Wait.", cfg) == ["Wait. "] * 3
    assert episodes("  Wait, one.", SegmentConfig()) == ["Wait, one."]  # leading blank dropped
    assert episodes("", SegmentConfig()) == []


def test_policy_defaults_hmm_is_the_papers_addition():
    text = "a. Hmm, b. await c."
    assert episodes(text, SegmentConfig()) == ["a. ", "Hmm, b. await c."]
    assert episodes(text, SegmentConfig(), official=True) == ["a. Hmm, b. a", "wait c."]
    assert "hmm" in DEFAULT_KEYWORDS and "hmm" not in OFFICIAL_KEYWORDS
    custom = SegmentConfig(keywords=["so"], whole_words=True)
    assert episodes("x so y", custom) == ["x ", "so y"]


def test_prefixes_are_verbatim_prefixes_of_the_trace():
    text = "\nFirst. Wait, second.\n\nHmm, third. Actually fourth."
    for cfg in (SegmentConfig(), SegmentConfig(method="paragraphs"),
                SegmentConfig(method="windows", window_tokens=2)):
        eps = episodes(text, cfg)
        assert "".join(eps) == text
        assert all(text.startswith(prefix(eps, k)) for k in range(len(eps) + 1))
        assert prefix(eps, 0) == ""


def test_paragraphs_and_word_windows():
    assert split_paragraphs("a\nb\n\nc\n \n\nd") == ["a\nb\n\n", "c\n \n\n", "d"]
    assert split_windows("one two three four five", 2) == ["one two ", "three four ", "five"]


class OffsetTokenizer:
    """Two characters per token, with offsets like a fast tokenizer's."""

    def __call__(self, text, add_special_tokens, return_offsets_mapping):
        return {"offset_mapping": [(i, min(i + 2, len(text))) for i in range(0, len(text), 2)]}


def test_token_windows_use_the_tokenizers_offsets_and_end_between_words():
    assert split_windows("ab cd ef gh ij", 2, OffsetTokenizer()) == ["ab cd ", "ef ", "gh ", "ij"]
    # a window never ends inside a number or a word: it runs on to the next word
    text = "60 miles per hour is 100 feet per second"
    pieces = split_windows(text, 11, OffsetTokenizer())  # token 11 starts inside "100"
    assert "".join(pieces) == text and pieces == ["60 miles per hour is 100 ", "feet per second"]
    assert split_windows("abcdefghij", 2, OffsetTokenizer()) == ["abcdefghij"]  # one word: one window
