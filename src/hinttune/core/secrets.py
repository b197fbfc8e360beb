"""Keeping API keys out of everything hinttune writes: logs, the console, the run store and
every output file.

A backend that reads a key registers it here (``register``); ``redact`` masks, in any text,
every run of 8 or more characters that also occurs in a registered key (so a key cut short by
a server's error message, or by our own truncation, is masked as well), and the value of any
``Authorization`` or ``api-key`` header. Redact *before* cutting a message to length: a cut
can keep all but the end of a key, and a masked key can only get shorter.
"""

from __future__ import annotations

import logging
import re

MIN_RUN = 8  # the shortest piece of a key that is masked (shorter runs occur by chance)
MASK = "***"
_keys: set[str] = set()
_HEADER = re.compile(r"((?:authorization|x-api-key|api-key|api_key)\"?'?\s*[:=]\s*\"?'?(?:bearer\s+)?)"
                     r"([^\s\"',;}]+)", re.I)


def register(key: str | None) -> None:
    """Remember a secret to mask wherever text is written (keys of 8+ characters)."""
    if key and len(key) >= MIN_RUN and key != "EMPTY":
        _keys.add(key)


def _covered(text: str, key: str, covered: bytearray) -> None:
    """Mark every position of ``text`` inside a run of MIN_RUN+ characters that is also in
    ``key``: such a run is a union of the key's MIN_RUN-character windows."""
    for start in range(len(key) - MIN_RUN + 1):
        window = key[start:start + MIN_RUN]
        at = text.find(window)
        while at != -1:
            covered[at:at + MIN_RUN] = b"\x01" * MIN_RUN
            at = text.find(window, at + 1)


def redact(text: str | None) -> str | None:
    """``text`` with registered keys (and pieces of them) and auth header values masked."""
    if not text:
        return text
    return mask_keys(_HEADER.sub(lambda m: m.group(1) + MASK, text))


MASKED_COUNTER = "replies with an API key masked"
_masked = 0


def mask_reply(text: str) -> str:
    """A model's reply with registered keys masked (a server or proxy that echoes the caller's
    key in a successful reply must not put it in the store and the dataset); counted, so the
    summary says it happened. Header-like text is left alone: a reply may discuss API code."""
    global _masked
    clean = mask_keys(text)
    if clean != text:
        _masked += 1
    return clean


def take_masked() -> int:
    """Replies masked since the last call."""
    global _masked
    found, _masked = _masked, 0
    return found


def mask_keys(text: str) -> str:
    """``text`` with registered keys, and runs of MIN_RUN+ characters of them, masked."""
    if not _keys or not text:
        return text
    covered = bytearray(len(text))
    for key in _keys:
        _covered(text, key, covered)
    if not any(covered):
        return text
    out, i = [], 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append(MASK)
        else:
            j = covered.find(b"\x01", i)
            j = len(text) if j == -1 else j
            out.append(text[i:j])
            i = j
    return "".join(out)


class RedactingFilter(logging.Filter):
    """Masks secrets in every record a handler writes (the message with its arguments, and
    the traceback text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True
