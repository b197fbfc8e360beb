"""Keys never reach what hinttune writes: whole, cut short, or as a header value."""

import logging

from hinttune.core import secrets
from hinttune.core.secrets import RedactingFilter, redact, register

KEY = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"


def setup_module():
    register(KEY)


def test_a_whole_key_and_any_piece_of_eight_or_more_characters_is_masked():
    assert KEY not in redact(f"bad key {KEY} given")
    cut = f"error: invalid api key {KEY[:-1]}"  # a message cut one character short of the key
    assert KEY[:-1] not in redact(cut) and "***" in redact(cut)
    assert KEY[5:13] not in redact(f"...{KEY[5:13]}...")  # 8 characters out of the middle
    assert redact(f"x{KEY[5:12]}x") == f"x{KEY[5:12]}x"  # 7 characters: could be anything


def test_header_values_are_masked_whatever_the_key():
    text = 'headers: {"Authorization": "Bearer unregistered-token-xyz", "api-key": "other-123456"}'
    out = redact(text)
    assert "unregistered-token-xyz" not in out and "other-123456" not in out
    assert "Authorization" in out


def test_masking_before_cutting_keeps_no_piece_of_a_key():
    """A server echoing the key past its 300th character: masked, then cut."""
    from hinttune.core.backends.openai import _error_message

    class Exc:
        body = {"error": {"message": "x" * 290 + f" key={KEY} rejected"}}

    message = _error_message(Exc())
    assert len(message) <= 300 and not any(KEY[i:i + 8] in message for i in range(len(KEY) - 7))


def test_log_records_are_masked(caplog):
    logger = logging.getLogger("hinttune.test_secrets")
    handler = logging.Handler()
    seen = []
    handler.emit = lambda record: seen.append(record.getMessage())
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("request failed: %s", f"401 for {KEY[:20]}")
    finally:
        logger.removeHandler(handler)
    assert seen and KEY[:20] not in seen[0]


def test_short_values_are_not_registered():
    before = set(secrets._keys)
    register("EMPTY")
    register("short")
    assert secrets._keys == before


def test_a_key_echoed_in_a_successful_reply_is_masked_everywhere_and_counted(tmp_path):
    """A server or proxy that answers 200 with the caller's key in the text: the key reaches
    neither the store, nor segments.jsonl, nor the exports, and the summary counts it."""
    import json

    from hinttune.construction.pipeline import build
    from hinttune.core.config import validate_config

    (tmp_path / "problems.json").write_text(json.dumps([{"problem": "What is 1 + 1?", "gold_answer": "2"}]))
    echo = f"Your key is {KEY}. "
    result = build(validate_config({
        "run_dir": str(tmp_path / "run"), "problems": {"source": str(tmp_path / "problems.json")},
        "think": {"backend": "fake", "model": "think",
                  "default_reply": f"<think>\n{echo}Wait, one plus one is two.\n</think>\n\n{echo}The answer is 2."},
        "instruct": {"backend": "fake", "model": "instruct", "default_reply": "The answer is 3."},
        "grading": {"grader": "math"}}))
    assert result.summary["states"]["Full-Hint"] == 1
    assert result.summary["replies_with_a_key_masked"] == 1
    # config.yaml holds the scripted reply itself (the fake's script), so it is not checked
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and p.name != "config.yaml"]
    assert any(p.name == "segments.jsonl" for p in written) and any(p.parent.name == "export" for p in written)
    for path in written:
        data = path.read_bytes()
        assert not any(KEY[i:i + 8].encode() in data for i in range(len(KEY) - 7)), path
    assert "Your key is ***" in (tmp_path / "run" / "export" / "hint_tuning.json").read_text()
