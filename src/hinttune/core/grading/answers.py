"""What a reply states as its final answer, when it has no ``\\boxed{}`` (Math-Verify's own case).

The instruct model's probe continuations often end in words: "so 15 in total", "Therefore, the
value of \\(x\\) that satisfies the equation is \\(3400\\).". Math-Verify's search takes the last
expression it can read, which is the wrong one when a check, a restated question or a revision
follows the answer. The reply is read as sentences, from its final statement back:
- a check after the answer ("Double-check: 15 / 5 = 3.", "验证：…"), a note, an aside in
  parentheses, a diagram and a question are not statements;
- an explicit statement ("the answer is X", "X is the answer", "Answer: X", "答案是 X", display
  math after "the answer is:") wins over what follows it, unless a revision follows ("Wait,
  actually it is 7."): then the revised value is the answer, and the reading is *unsure*;
- otherwise the last sentence that says a value, read at its copula: in "<what> is <value>" the
  value follows the last "is" / "are" / "=" / "gives" / "yields" / "to get" / "是" / "为" that a
  value follows, and a math span that only names the asked quantity (``$x$``, ``$f(x)$``,
  ``$AFD$``) is never the value; with no copula, the sentence's last value;
- in a value: the right-hand side of an equation (``$3! \\times 5! = 720$`` is 720), the last
  line of an ``align`` block, the exact form before "≈", several solutions as a set ("x = 3 or
  x = -3" is {3, -3}), a list as a list (``21, 16, 11``), a point as a point, a relation
  whole (``x \\geq 5``; graded as its bound only when the gold is a number), a leading number
  without its unit, dollars of money (``\\$35``, "$18 and ..."), digits next to CJK characters.
A reading is *sure* when one value follows the copula of one final statement; with several
candidates, a revision or no clear final statement it is not, and ``hybrid`` asks the judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Stated:
    candidates: tuple[str, ...]  # forms for Math-Verify to parse, best first
    sure: bool
    why: str = ""  # why the reading is not sure
    relation: str | None = None  # the value as a relation ("x \geq 5") when it was stated as one
    sentence: str = ""  # the sentence it was read from (a choice letter or a text answer is read there)
    equation: str | None = None  # the whole equation the value ends ("5x - 7y + 11z + 4 = 0"), if any


# --- math spans -------------------------------------------------------------------------

_ENVIRONMENT = re.compile(r"\\begin\{(align\*?|aligned|equation\*?|gather\*?|eqnarray\*?)\}(.*?)\\end\{\1\}", re.S)
_ASY = re.compile(r"\[asy\].*?\[/asy\]", re.S)
_OPENERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))


def math_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, body) of each math span: ``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``
    and align-like environments; an escaped ``\\$`` is text, never a delimiter."""
    spans, i = [], 0
    while i < len(text):
        env = _ENVIRONMENT.match(text, i) if text.startswith("\\begin{", i) else None
        if env:
            spans.append((i, env.end(), env.group(2)))
            i = env.end()
            continue
        for open_, close in _OPENERS:
            if text.startswith(open_, i) and not (open_ == "$" and i and text[i - 1] == "\\"):
                end = _closing(text, close, i + len(open_))
                if end is not None:
                    spans.append((i, end + len(close), text[i + len(open_):end]))
                    i = end + len(close)
                    break
        else:
            i += 1
    return spans


def _closing(text: str, close: str, start: int) -> int | None:
    j = start
    while True:
        j = text.find(close, j)
        if j < 0:
            return None
        if close == "$" and text[j - 1] == "\\":  # "\$" inside math: a dollar sign
            j += 1
            continue
        if close == "$" and text.startswith("$$", j) and j == start:
            return None
        return j


# --- sentences --------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[.!?]\))\s+(?=\S)|(?<=[。！？；])\s*")  # "... = 0.)  Therefore"
_CHECK = re.compile(r"^\W*(?:double[- ]?check\w*|check\w*|verif\w*|sanity\s+check|as\s+a\s+check|indeed"
                    r"|(?:we|you)\s+(?:can|could|may|might|should)\s+(?:double[- ]?)?(?:check|verify|confirm)"
                    r"|let(?:'s|\s+me|\s+us)\s+(?:double[- ]?)?(?:check|verify|confirm)|to\s+(?:check|verify|confirm)"
                    r"|(?:this|which|that)\s+(?:matches|checks\s+out|is\s+consistent|confirms)"
                    r"|note\b|notice\b|remark\b|alternatively\b|验证|检验|验算|检查|注)", re.I)
_REVISION = re.compile(r"\b(?:wait|actually|correction|oops|on\s+second\s+thought|i\s+made\s+an?\s+(?:mistake|error)"
                       r"|let\s+me\s+(?:re\w+|correct)|sorry|no,)", re.I)
_STATEMENT = re.compile(r"(?:\b(?:final\s+answer|(?:correct\s+)?answer)\s*(?:is|:|=|would be|will be|should be)"
                        r"|(?:最终)?答案(?:是|为|：|:))\s*:?\s*", re.I)
_ANSWER_AFTER = re.compile(r"^(.*?)\s+(?:is|are|would be|will be)\s+(?:the|our|my)\s+(?:final\s+|correct\s+)?"
                           r"answer\b", re.I)
# what a conclusion or a copula says before its value; the value follows the last one a value follows
# (a verb after "to" is a purpose, "to get to the theater", not what the sentence concludes)
_COPULA = re.compile(r"(?:(?<!to )\b(?:is|are|was|were|equals?|be|becomes?|gives?|gave|yields?|implies|get|gets|got"
                     r"|obtain|obtains|find|reach|makes?|made|being|comes?\s+to|results?\s+in|totals?|costs?|takes?|took"
                     r"|needs?|needed|has|have|had|spends?|spent|pays?|paid|earns?|earned|saves?|saved|buys?|bought"
                     r"|sells?|sold|owes?|owed|weighs?|weighed|solves?\s+to|leaving(?:\s+an?\s+answer\s+of)?|leaves"
                     r"|therefore|thus|hence|so|consequently|finally|altogether|in\s+total|in\s+all)\b"
                     r"|(?<![<>!=\\])=(?!=)|:|是|为|等于|得|共|所以|因此|故)\s*", re.I)
_CLAUSE = re.compile(r"(?:,|;)\s*(?:and\s+(?:thus|so|hence|then|therefore)?|so|or|then|thus|hence|therefore|which\s+"
                     r"(?:is|gives|means)|in\s+which\s+case|giving|yielding)\b\s*|\s+and\s+(?:thus|so|hence|then|therefore)\b\s*"
                     r"|\s+(?:and|or)\s+(?=\$)", re.I)  # "Thus, $k-1=1,$ and $k=2.$" (a comma inside the span)
_COMPARATIVE = re.compile(r"(?:not\s+)?(?:greater|less|more|fewer|larger|smaller|bigger|at\s+(?:least|most)|divisible"
                          r"|positive|negative|the\s+(?:first|smallest|largest|only))\b", re.I)
_CONCLUSION = re.compile(r"\b(?:therefore|thus|hence|so|consequently|in\s+total|altogether|in\s+all|overall"
                         r"|finally|which\s+gives|we\s+get|gives)\b|所以|因此|故|综上", re.I)
_NUMBER_WORD = re.compile(r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                          r"thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|"
                          r"forty|fifty|sixty|seventy|eighty|ninety|hundred)\b", re.I)
# a number in text: thousands groups, a decimal point, a fraction a/b, digits beside CJK characters
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])[-+−]?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?(?![\d])"
                     r"(?:\s*(?:×|\\times|x)\s*10\^\{?-?\d+\}?)?")
_CHOICE = re.compile(r"(?:\(([A-E])\)|\b(?:choice|option)\s*\(?([A-E])\)?(?![A-Za-z]))", re.I)


def _sentences(text: str) -> list[str]:
    """Paragraphs, lines that end a sentence, then sentences; math spans stay whole, and a
    span's own final period ("$3.$", "\\[6.\\]") ends its sentence."""
    spans = math_spans(text)
    blocks: list[str] = []
    hidden, last = [], 0
    for start, end, body in spans:
        hidden.append(text[last:start])
        blocks.append(text[start:end])
        hidden.append(f"\x00{len(blocks) - 1}\x00")
        if re.search(r"[.!?]\s*$", body):
            hidden.append(".")
        # "...\]Hence, the angle is $90^\circ$.": display math ends a sentence where a
        # capitalised word follows it with no space (as MATH's solutions are written)
        if re.match(r"\\\[|\$\$|\\begin", text[start:end]) and re.match(r"[A-Z][a-z]", text[end:end + 2]):
            hidden.append(". " if not hidden[-1] == "." else " ")
        last = end
    hidden.append(text[last:])
    out = []
    for paragraph in re.split(r"\n\s*\n", "".join(hidden)):
        # a line break continues the sentence before display math, a lower-case word, or
        # after a comma or an operator ("the factorization is\n\\[...\\]"); else it ends it
        joined = re.sub(r"(?<=[,;(=+\-])[ \t]*\n|\n(?=[ \t]*(?:\x00|[a-z]))", " ", paragraph.strip())
        for line in joined.splitlines():
            for sentence in _SENTENCE_END.split(line.strip()):
                sentence = re.sub(r"\x00(\d+)\x00", lambda m: blocks[int(m.group(1))], sentence).strip()
                if sentence:
                    out.append(sentence)
    return out


def _aside(sentence: str) -> bool:
    s = sentence.strip()
    if re.match(r"^\W*check\w*\s*,\s*we\s+(?:find|see|get)\b", s, re.I):  # "Checking, we find that ...": a result
        return False
    return (_CHECK.match(s) is not None or s.endswith("?") or s.endswith("？")
            or (s.startswith("(") and s.rstrip(".").endswith(")")))


# --- values -----------------------------------------------------------------------------

_NAME = re.compile(r"^\s*(?:[A-Za-z]{1,4}|[A-Z]{5,12}|\\[a-zA-Z]+|[A-Za-z]_\{?\w+\}?|[A-Za-z]'*|\\(?:angle|overline|triangle|"
                   r"overarc|widehat|mathbf|bold|vec)\s*\{?[^{}]*\}?\s*\w*"
                   r"|[a-zA-Z]\s*\([a-z,\s]*\)|[a-zA-Z]\^\{?-1\}?\s*\(?[a-z]?\)?|m\s*\\angle\s*\w+)\s*$")
_RELATION = re.compile(r"\\(?:geq?|leq?|neq|ne|gt|lt|in)\b|[<>≤≥≠]")


@dataclass(frozen=True)
class _Value:
    form: str  # what Math-Verify is given
    relation: str | None = None
    equation: str | None = None  # compared whole when the gold is an equation


def _is_name(body: str) -> bool:
    """A span that names what is asked (a variable, a function, a figure, a set) rather than
    states a value: never the answer. A lone number or a constant (pi, e) is a value."""
    b = body.strip().rstrip(".,;").strip()
    if not b or re.search(r"\d", b) or b in ("\\pi", "\\infty", "e", "\\emptyset", "\\varnothing"):
        return False
    return _NAME.match(b) is not None and not _RELATION.search(b)


def _clean(body: str) -> str:
    body = body.strip().rstrip(".,;:").strip()
    body = re.sub(r"\\(?:displaystyle|left|right)(?![A-Za-z])|(?<=,)\\!\s*", "", body).replace("!=", "\\neq ")
    return re.sub(r"\\[,!;:]|\\quad|\\qquad|&", " ", body).strip()


def _value_of_span(body: str) -> _Value | None:
    """The value a math span states: an align block's last line, an equation's right-hand
    side, the exact form before ≈; a relation kept whole beside its bound."""
    if re.search(r"\\(?:multicolumn|cline|hline)\b", body):  # a table of working (long division), not a value
        return None
    nested: list[str] = []
    masked = re.sub(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", lambda m: nested.append(m.group(0)) or f"\x01{len(nested) - 1}\x01",
                    body, flags=re.S)  # a matrix's rows are not the block's lines
    rows = [r for r in re.split(r"\\\\", masked) if r.strip()]
    if not rows:
        return None
    text = re.sub(r"\x01(\d+)\x01", lambda m: nested[int(m.group(1))], _clean(rows[-1]))  # a matrix keeps its &
    text = re.sub(r"\\(?:pmod|bmod|mod)\s*\{?\w+\}?\s*$", "", text).replace("\\equiv", "=").strip()
    text = re.split(r"≈|\\approx", text, maxsplit=1)[0].strip()
    unit = re.sub(r"(?:\\text\{[^{}]*\}|\\(?:mbox|textrm)\{[^{}]*\})\s*$", "", text).strip()
    text = unit if unit and not unit.endswith("=") else text  # "5 \\text{ cm}"; "= \\text{(B)}" is the value
    relation = _RELATION.search(text)
    if relation and not text.startswith("\\in"):
        whole = text
        side = re.split(r"\\(?:geq?|leq?|neq|ne|gt|lt|in)\b|[<>≤≥≠]|=", text)[-1].strip()
        if re.search(r"\\in\b", text):  # "x \in (3, 4]": the set
            return _Value(f"${side}$") if side else None
        return _Value(f"${side}$" if side else f"${whole}$", relation=f"${whole}$")
    if "=" in text:
        equation = f"${text.rstrip('.,;').strip()}$"
        parts = [p.strip() for p in text.split("=")]
        value = parts[-1] or (parts[-2] if len(parts) > 1 else "")
        if not value or _is_name(value):
            value = next((p for p in reversed(parts) if p and not _is_name(p)), "")
        text = value
    else:
        equation = None
    text = text.replace("±", "\\pm ").strip().rstrip(".,;").strip()
    return _Value(f"${text}$", equation=equation) if text and not _is_name(text) else None


def _values(clause: str) -> list[tuple[int, _Value]]:
    """(position, value) of every value a clause states, math spans and plain numbers, in
    order; names of what is asked are left out."""
    found: list[tuple[int, _Value]] = []
    spans = math_spans(clause)
    taken = [(s, e) for s, e, _ in spans]
    for start, _, body in spans:
        value = _value_of_span(body)
        if value is not None:
            found.append((start, value))
    plain = "".join(" " * (e - s) if any(a <= s < b for a, b in taken) else clause[s:e]
                    for s, e in _chars(clause, taken))
    for match in _TUPLE.finditer(plain):  # "the point (2, -1)": one value, not two
        found.append((match.start(), _Value(f"${match.group(0)}$".replace("−", "-"))))
        plain = plain[:match.start()] + " " * (match.end() - match.start()) + plain[match.end():]
    for match in _NUMBER.finditer(plain):
        sign = re.search(r"(?:±|\\pm)\s*$", plain[:match.start()])  # "x = ±3": both signs
        found.append((match.start(), _Value(f"$\\pm {_number(match.group(0))}$" if sign else _number(match.group(0)))))
    for match in _SOLUTIONS.finditer(plain):
        found.append((match.start(), _Value(f"${match.group(2)}, {match.group(3)}$".replace("−", "-"))))
    return sorted(found, key=lambda f: f[0])


_TUPLE = re.compile(r"\(\s*[-+−]?\d[\d.]*(?:\s*,\s*[-+−]?\d[\d.]*)+\s*\)")


def _chars(clause: str, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The clause cut at the spans' edges (spans blanked by the caller, positions kept)."""
    cuts = sorted({0, len(clause), *[x for pair in taken for x in pair]})
    return [(a, b) for a, b in zip(cuts, cuts[1:])]


_SOLUTIONS = re.compile(r"\b([a-zA-Z])\s*=\s*([-+−]?\d[^\s,;=]*?)(?:\s*,\s+|\s+or\s+|\s+and\s+)(?:\1\s*=\s*)?"
                        r"([-+−]?\d[^\s,;=]*?)(?=[\s,;.]|$)")


def _number(raw: str) -> str:
    value = raw.replace("−", "-").replace(" ", "")
    sci = re.match(r"^(.+?)(?:×|\\times|x)10\^\{?(-?\d+)\}?$", value)
    if sci:
        return f"${sci.group(1).replace(',', '')} \\times 10^{{{sci.group(2)}}}$"
    return value.replace(",", "")


def _read(sentence: str, lead: bool) -> tuple[list[_Value], bool, str]:
    """(values, sure, why) of a sentence that states a value. The value follows the last
    copula (or conclusion word) that a value follows; with none (``lead`` False), the last
    value. Sure when that leaves one value."""
    said = re.split(r",?\s+(?:because|since)\b", sentence.strip(), maxsplit=1)[0]
    sentence = said if _values(said) else sentence.strip()  # "one hour because 60 / 60 = 1"
    # "Because $x$ cannot be $0$, $x=5$.", "If $N^2 = 121$, then $N = 11$.": the main clause
    main = re.match(r"^(?:(?:thus|so|hence|therefore),?\s+)?(?:because|since|as|if|when|given|for)\b"
                    r"(?:[^,]*,\s*(?:then\s+)?|.*?\s+then\s+)(.+)$",  # "if $f(-3) = 2,$ then ...": a comma in the span
                    _blank_spans(sentence), re.I | re.S)
    if main and _values(sentence[main.start(1):]):
        sentence = sentence[main.start(1):]
    condition = re.search(r"\s+(?:for\s+(?:all|every|each|any)|whenever|provided)\b", _blank_spans(sentence), re.I)
    if condition and _values(sentence[:condition.start()]):  # "$f(i,2) = 1$ for all $i \ge 5$": a condition
        sentence = sentence[:condition.start()]
    approx = re.search(r"\s*(?:≈|~=)", _blank_spans(sentence))  # "1/6 ≈ 0.167": the exact form
    if approx and _values(sentence[:approx.start()]):
        sentence = sentence[:approx.start()]
    values = _values(sentence)
    if not values:
        return [], False, "no value"
    text_only = _blank_spans(sentence)
    solutions = _SOLUTIONS.search(text_only)  # "x = 3 or x = -3": one answer, a set
    if solutions:
        return [_Value(f"${solutions.group(2)}, {solutions.group(3)}$".replace("−", "-"))], True, ""
    # "..., so $BC = 8\sqrt{2}$, and \[[ABC] = 32.\]": the last clause that says a value
    # with a copula of its own concludes
    clauses = [m.end() for m in _CLAUSE.finditer(text_only)]
    for start in reversed(clauses):
        rest = sentence[start:]
        if _values(rest) and (_COPULA.search(_blank_spans(rest)) or any(
                "=" in body or _RELATION.search(body) for _, _, body in math_spans(rest))):
            values = [(pos + start, v) for pos, v in _values(rest)]
            text_only = " " * start + text_only[start:]
            break
    cut = None
    for match in reversed(list(_COPULA.finditer(text_only))):
        if _COMPARATIVE.match(text_only, match.end()):  # "is greater than 125": a condition
            continue
        if any(pos >= match.end() - 1 for pos, _ in values):
            cut = match.end()
            break
    if cut is None:
        if lead:
            return [values[0][1], *[v for _, v in values[1:]]], len(values) == 1, "several values"
        chosen = values[-1][1]
        return [chosen, *[v for _, v in values[:-1]]], len(values) == 1, "no final statement, several values"
    after = [v for pos, v in values if pos >= cut - 1]
    tail = text_only[cut:]
    restated = len(after) > 1 and _restates(tail, values, cut)
    sure = len(after) == 1 or restated
    others = [v for pos, v in values if pos < cut - 1]
    return after + others, sure, "" if sure else "several values after the copula"


def _restates(tail: str, values: list[tuple[int, _Value]], cut: int) -> bool:
    """"24 eggs in 4 boxes": the first value, then a phrase restating the question."""
    first = next(pos for pos, _ in values if pos >= cut - 1)
    rest = tail[max(0, first - cut + 1):]
    return re.match(r"^\S*\s*(?:[A-Za-z%°'’-]+\s*){0,3}(?:in|out\s+of|of|for|from|to|per|with|after|at|on|by|than"
                    r"|over|each|left|remaining)\b", rest, re.I) is not None


def _blank_spans(sentence: str) -> str:
    out = list(sentence)
    for start, end, _ in math_spans(sentence):
        for k in range(start, end):
            out[k] = " " if k != start else "$"
    return "".join(out)


# --- the reply --------------------------------------------------------------------------

def _prepare(text: str) -> str:
    text = _ASY.sub(" ", text.strip())
    if "\n" not in text and len(text) < 80 and not math_spans(text) and re.search(r"\\[A-Za-z]{2,}", text):
        text = f"${text}$"  # a bare expression ("-\\frac{10}{9}"), as short replies give it
    text = re.sub(r"\\\$\s*", "", text)  # "\$35": dollars inside math
    return _money_to_numbers(text)


def stated_answer(text: str) -> Stated:
    text = _prepare(text)
    sentences = _sentences(text)
    said = [i for i, s in enumerate(sentences) if _statement_tail(s) is not None]
    if said:
        i = said[-1]
        tail = _statement_tail(sentences[i]) or ""
        if not _values(tail) and i + 1 < len(sentences):  # "the answer is:" then display math
            tail = sentences[i + 1]
        chosen, sure, why = _read_statement(tail)
        for later in sentences[i + 1:]:
            if _aside(later) or not _values(later):
                continue
            if _REVISION.search(later):
                revised, _, _ = _read(_after(_REVISION, later), lead=True)
                if revised and revised[0] not in chosen:
                    return _stated(revised + chosen, False, "the stated answer is revised after it", later)
        return _stated(chosen, sure and bool(chosen), why or ("" if chosen else "no value stated"), sentences[i])
    in_words = False  # a later sentence says a number in words ("so it took three days")
    for sentence in reversed(sentences):
        if _aside(sentence):
            continue
        if not _values(sentence):
            in_words = in_words or bool(_NUMBER_WORD.search(sentence))
            continue
        if in_words:
            chosen, _, _ = _read(sentence, lead=_CONCLUSION.search(sentence) is not None)
            return _stated(chosen, False, "a later sentence says a number in words", sentence)
        if _REVISION.search(sentence):
            chosen, _, _ = _read(_after(_REVISION, sentence), lead=True)
            return _stated(chosen, False, "a revision, no answer stated", sentence)
        chosen, sure, why = _read(sentence, lead=False)
        return _stated(chosen, sure, why, sentence)
    last = next((s for s in reversed(sentences) if not _aside(s)), "")
    return Stated((), False, "no value in the reply", sentence=last)


def _read_statement(tail: str) -> tuple[list[_Value], bool, str]:
    values = _values(re.split(r",?\s+(?:because|since)\b", tail.strip(), maxsplit=1)[0])
    if not values:
        word = tail.strip(" *_`").rstrip(".,;:!。").strip()
        if word and len(word.split()) <= 3:
            return [_Value(word)], True, ""
        return [], False, "no value"
    if len(values) > 1 and _COPULA.search(_blank_spans(tail)):  # "Final Answer: The volume of $V$ is 120."
        return _read(tail, lead=True)
    first = values[0][1]
    sure = len(values) == 1 or _restates(tail, values, 1)
    return [first, *[v for _, v in values[1:]]], sure, "" if sure else "several values"


def _stated(values: list[_Value], sure: bool, why: str, sentence: str) -> Stated:
    forms = tuple(dict.fromkeys(v.form for v in values))
    relation = values[0].relation if values else None
    equation = values[0].equation if values else None
    return Stated(forms, sure and bool(forms), "" if sure and forms else (why or "no value"), relation, sentence,
                  equation)


def _statement_tail(sentence: str) -> str | None:
    """What follows "the answer is" (or precedes "is the answer"), None when not a statement."""
    found = list(_STATEMENT.finditer(sentence))
    if found and re.match(r"\s*(?:correct|right|wrong|incorrect|valid|consistent|reasonable)\b", sentence[found[-1].end():], re.I):
        return None  # "so our answer is correct": a check, not a statement
    if found:
        return sentence[found[-1].end():]
    after = _ANSWER_AFTER.match(sentence)
    if after:
        return _after(_CONCLUSION, after.group(1))
    return None


def _after(pattern: re.Pattern, sentence: str) -> str:
    """What follows the last match of ``pattern`` that a value follows; the whole sentence
    when there is none."""
    for found in reversed(list(pattern.finditer(sentence))):
        if _values(sentence[found.end():]):
            return sentence[found.end():]
    return sentence


def _money_to_numbers(text: str) -> str:
    """Dollars of money read as ``$...$`` math spans would swallow what is between them
    ("$18 and the tax is $2", "$204 + $160"): where a span that starts with a digit holds two
    words or ends in a space or an operator, ``$`` before a digit is money."""
    money = re.compile(r"(?<!\\)\$(?=\d)")
    if re.search(r"\\[A-Za-z\[(,!;:]|[\^_{}]", text):  # LaTeX is written ("\\!" too): "$" delimits math
        return text
    for start, end, body in math_spans(text):
        if text[start] == "$" and not text.startswith("$$", start) and re.match(r"\d", body) and (
                re.search(r"[\s=+*/x-]$", body) or re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}",
                                                              re.sub(r"\\text\{[^}]*\}", "", body))):
            return money.sub("", text)
    if text.count("$") % 2 and money.search(text):  # one lone "$5"
        return money.sub("", text)
    if re.search(r"\d\$(?=[\s,.;]|$)", text) and not re.search(r"\$[-(A-Za-z\\]|[A-Za-z)}]\$", text):  # "20$": dollars after the number
        return re.sub(r"(?<=\d)\$|(?<!\\)\$(?=\d)", "", text)
    return text


def choice_letter(text: str) -> str | None:
    """The letter of a multiple-choice answer: "(C)", "(C) 12", "choice C", "\\text{(C)}"."""
    text = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", text)
    bare = text.strip().strip("$ .").strip()
    if re.fullmatch(r"\(?([A-E])\)?", bare):
        return bare.strip("()")
    found = list(_CHOICE.finditer(text))
    return (found[-1].group(1) or found[-1].group(2)).upper() if found else None


def normalized_text(text: str) -> str:
    """A text answer for comparison: \\text{} unwrapped, case, punctuation and articles away."""
    text = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"[$\\{}().,;:!?\"'`*]", " ", text.lower())
    return " ".join(w for w in text.split() if w not in ("the", "a", "an", "is", "answer"))


def is_choice(gold: str) -> bool:
    """A multiple-choice gold: a letter A-E alone, "(C)", "\\text{(C)}"."""
    bare = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", gold).strip().strip("$ .").strip()
    return re.fullmatch(r"\(?[A-E]\)?", bare) is not None


def is_text(gold: str) -> bool:
    """A gold in words ("\\text{no real solution}", "\\text{east}"): compared as text."""
    words = re.findall(r"\\text(?:bf)?\{([^{}]*)\}", gold)
    rest = re.sub(r"\\text(?:bf)?\{[^{}]*\}", "", gold).strip(" $.")
    return bool(words) and not rest and re.search(r"[A-Za-z]{2,}", " ".join(words)) is not None and not is_choice(gold)


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox``), braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0 or "{" not in text[start:]:
        return None
    open_at = text.index("{", start)
    depth = 0
    for k in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth == 0:
            return text[open_at + 1:k]
    return None
