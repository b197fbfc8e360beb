"""What a reply states as its final answer, when it has no ``\\boxed{}`` (Math-Verify's own case).

The instruct model's probe continuations often end in words: "so 15 in total", "Therefore, the
answer is:\\n\\[6\\]". Math-Verify's search takes the last expression it can read, which is the
wrong one when a check, a restated question or a revision follows the answer. The reply is read
as sentences, from its final statement back:
- a check after the answer ("Double-check: 15 / 5 = 3.") and a question are not statements;
- an explicit statement ("the answer is X", "X is the answer", "Answer: X", display math after
  "the answer is:") wins over what follows it, unless a revision follows ("Wait, actually it is
  7."): then the revised value is the answer, and the reading is *unsure*;
- otherwise the last sentence that says a value: after a conclusion word (therefore, so, in
  total ...) its first value, a trailing restatement dropped ("24 eggs in 4 boxes" is 24);
  with no such word, its value if it holds one ("It is 4.", "12 + 30 = 32");
- in a value: the right-hand side of an equation, the exact form before "≈", several solutions
  as a set ("x = 3 or x = -3" is {3, -3}), a leading number without its unit, dollars of money
  (not ``$...$`` math).
A reading is *sure* when one statement says one value; with several candidates, a revision or
no clear final statement it is not, and the ``hybrid`` grader asks the judge instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Stated:
    candidates: tuple[str, ...]  # forms for Math-Verify to parse, best first
    sure: bool
    why: str = ""  # why the reading is not sure


_DISPLAY = re.compile(r"\\\[(.+?)\\\]|\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"\$(.+?)\$|\\\((.+?)\\\)", re.S)
_NUMBER = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?(?![\d])")
_STATEMENT = re.compile(r"\b(?:final\s+answer|(?:correct\s+)?answer)\s*(?:is|:|=|would be|will be|should be)"
                        r"\s*:?\s*", re.I)
_ANSWER_AFTER = re.compile(r"^(.*?)\s+(?:is|are|would be|will be)\s+(?:the|our|my)\s+(?:final\s+|correct\s+)?"
                           r"answer\b", re.I)
_CHECK = re.compile(r"^\W*(?:double[- ]?check\w*|check\w*|verif\w*|sanity\s+check|as\s+a\s+check|indeed"
                    r"|let(?:'s|\s+me|\s+us)\s+(?:double[- ]?)?(?:check|verify|confirm)|to\s+(?:check|verify|confirm)"
                    r"|(?:this|which|that)\s+(?:matches|checks\s+out|is\s+consistent|confirms))\b", re.I)
_REVISION = re.compile(r"\b(?:wait|actually|correction|oops|on\s+second\s+thought|i\s+made\s+an?\s+(?:mistake|error)"
                       r"|let\s+me\s+(?:re\w+|correct)|sorry|no,)", re.I)
_CONCLUSION = re.compile(r"\b(?:therefore|thus|hence|so|consequently|in\s+total|altogether|in\s+all|overall"
                         r"|finally|which\s+gives|we\s+get|gives)\b[,:]?\s*", re.I)
# after the value: its unit, then nothing or a phrase restating the question ("in 4 boxes")
_RESTATED = re.compile(r"^\s*(?:[A-Za-z%°'’-]+\s*){0,3}(?:$|[.,;:!)]|(?:in|out\s+of|of|for|from|to|per|with|after"
                       r"|at|on|by|than|over|each|left|remaining|total)\b)", re.I)
_VALUE = r"[-+−]?(?:\d|\\)[^\s,;=]*?"
_SOLUTIONS = re.compile(rf"\b([a-zA-Z])\s*=\s*({_VALUE})(?:\s*,\s+|\s+or\s+|\s+and\s+)(?:\1\s*=\s*)?({_VALUE})(?=[\s,;.]|$)")
_NUMBER_WORD = re.compile(r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                          r"thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|"
                          r"forty|fifty|sixty|seventy|eighty|ninety|hundred)\b", re.I)
_MONEY = re.compile(r"(?<!\\)\$(?=\d)")


def stated_answer(text: str) -> Stated:
    text = _money_to_numbers(text.strip())
    sentences = _sentences(text)
    said = [i for i, s in enumerate(sentences) if _statement_tail(s) is not None]
    if said:
        i = said[-1]
        tail = _statement_tail(sentences[i]) or ""
        if not _values(tail) and i + 1 < len(sentences):  # "the answer is:" then display math
            tail = sentences[i + 1]
        chosen, sure, why = _read(tail, lead=True)
        for later in sentences[i + 1:]:
            if _CHECK.match(later) or not _values(later):
                continue
            if _REVISION.search(later):
                revised, _, _ = _read(_valued_tail(_REVISION, later), lead=True)
                if revised and revised[0] not in chosen:
                    return Stated(tuple(dict.fromkeys(revised + chosen)), False,
                                  "the stated answer is revised after it")
        return Stated(tuple(chosen), sure and bool(chosen), why or ("" if chosen else "no value stated"))
    in_words = False  # a later sentence says a number in words ("so it took three days")
    for sentence in reversed(sentences):
        if _CHECK.match(sentence) or sentence.rstrip().endswith("?"):
            continue
        if not _values(sentence):
            in_words = in_words or bool(_NUMBER_WORD.search(sentence))
            continue
        if in_words:
            chosen, _, _ = _read(sentence, lead=_CONCLUSION.search(sentence) is not None)
            return Stated(tuple(chosen), False, "a later sentence says a number in words")
        if _REVISION.search(sentence):
            chosen, _, _ = _read(_valued_tail(_REVISION, sentence), lead=True)
            return Stated(tuple(chosen), False, "a revision, no answer stated")
        if _CONCLUSION.search(sentence):
            chosen, sure, why = _read(_valued_tail(_CONCLUSION, sentence), lead=True)
            if chosen:
                return Stated(tuple(chosen), sure, why)
        # a value not stated as the answer: clear when the sentence holds one ("It is 4.",
        # "12 + 30 = 32"), else there is no final statement to go by
        chosen, sure, _ = _read(sentence, lead=False)
        return Stated(tuple(chosen), sure, "" if sure else "no final statement, several values")
    return Stated((), False, "no value in the reply")


def _money_to_numbers(text: str) -> str:
    """Dollars of money read as ``$...$`` math spans would swallow what is between them
    ("$18 and the tax is $2", "$204 + $160"): where a span that starts with a digit holds two
    words or ends in a space or an operator, ``$`` before a digit is money."""
    for match in _INLINE.finditer(text):
        body = match.group(1)
        if body is not None and re.match(r"\d", body) and (re.search(r"[\s=+*/x-]$", body) or re.search(
                r"[A-Za-z]{2,}\s+[A-Za-z]{2,}", re.sub(r"\\text\{[^}]*\}", "", body))):
            return _MONEY.sub("", text)
    if text.count("$") % 2 and _MONEY.search(text):  # one lone "$5"
        return _MONEY.sub("", text)
    if re.search(r"\d\$(?=[\s,.;]|$)", text):  # "20$": dollars written after the number
        return re.sub(r"(?<=\d)\$|(?<!\\)\$(?=\d)", "", text)
    return text


def _sentences(text: str) -> list[str]:
    """Lines, then sentences; display math stays whole (and with the sentence it ends)."""
    blocks: list[str] = []

    def hide(match: re.Match) -> str:
        blocks.append(match.group(0))
        return f"\x00{len(blocks) - 1}\x00"

    hidden = _DISPLAY.sub(hide, text)
    hidden = _INLINE.sub(hide, hidden)
    out = []
    for line in hidden.splitlines():
        for sentence in re.split(r"(?<=[.!?])\s+(?=\S)", line.strip()):
            if sentence.strip():
                out.append(re.sub(r"\x00(\d+)\x00", lambda m: blocks[int(m.group(1))], sentence.strip()))
    return out


def _statement_tail(sentence: str) -> str | None:
    """What follows "the answer is" (or precedes "is the answer"), None when not a statement."""
    found = list(_STATEMENT.finditer(sentence))
    if found:
        return sentence[found[-1].end():]
    after = _ANSWER_AFTER.match(sentence)
    if after:
        words = after.group(1)
        return _valued_tail(_CONCLUSION, words)
    return None


def _valued_tail(pattern: re.Pattern, sentence: str) -> str:
    """What follows the last match of ``pattern`` that a value follows ("so 15 in total":
    after "so", not after "in total"); the whole sentence when there is none."""
    for found in reversed(list(pattern.finditer(sentence))):
        if _values(sentence[found.end():]):
            return sentence[found.end():]
    return sentence


def _values(clause: str) -> bool:
    return bool(_NUMBER.search(clause) or _DISPLAY.search(clause) or _INLINE.search(clause))


def _read(clause: str, lead: bool) -> tuple[list[str], bool, str]:
    """(candidates, sure, why) of a clause that states a value: its first value when ``lead``
    (a statement or a conclusion), else its last."""
    clause = re.split(r",?\s+because\b", clause.strip(), maxsplit=1)[0]  # the value, not why
    spans = [next(g for g in m.groups() if g is not None) for m in
             list(_DISPLAY.finditer(clause)) + list(_INLINE.finditer(clause))]
    if spans:
        spans.sort(key=clause.find)
        body = (spans[0] if lead else spans[-1]).strip().rstrip(".,;").strip()
        value = _exact(_rhs(body)).rstrip(".,;").strip()
        sure = (len(spans) == 1 or lead) and bool(value)
        return ([f"${value}$"] if value else []), sure, "" if sure else "several formulas"
    solutions = _SOLUTIONS.search(clause)
    if solutions:
        return [f"${solutions.group(2)}, {solutions.group(3)}$".replace("−", "-")], True, ""
    plain = _exact(_rhs(clause)) if "=" in clause else _exact(clause)
    numbers = list(_NUMBER.finditer(plain))
    if not numbers:
        word = plain.strip(" *_`").rstrip(".,;:!").strip()
        return ([word] if word and len(word.split()) <= 3 else []), bool(word) and len(word.split()) <= 3, ""
    first_says_it = lead or "=" in clause or bool(_RESTATED.match(plain[numbers[0].end():]))
    chosen = numbers[0] if first_says_it else numbers[-1]
    value = chosen.group(0).replace(",", "").replace(" ", "").replace("−", "-")
    if plain[:chosen.start()].rstrip().endswith("\\pm"):  # "x = ±3": both signs
        value = f"$\\pm {value}$"
    if re.match(r"\s*(?:[-+*/^(]|\\(?:cdot|times))", plain[chosen.end():]):  # an expression, not a number
        expression = plain[chosen.start():].strip().rstrip(".,;")
        return [f"${expression}$", value], False, "an expression, not a value"
    rest = plain[chosen.end():]
    sure = len(numbers) == 1 or bool(_RESTATED.match(rest)) if lead else len(numbers) == 1
    alternatives = [n.group(0).replace(",", "") for n in numbers if n is not chosen]
    return [value] + alternatives, sure, "" if sure else "several numbers"


def _rhs(text: str) -> str:
    return text.rsplit("=", 1)[1] if "=" in text else text


def _exact(text: str) -> str:
    """The exact form of "1/6 ≈ 0.167"; "±3" as Math-Verify reads it."""
    text = re.split(r"≈|\\approx", text, maxsplit=1)[0]
    return text.replace("±", "\\pm ")
