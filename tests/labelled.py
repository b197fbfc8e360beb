"""A labelled set of plain replies built from the benchmarks' reference solutions: each
solution with its final answer left in the words (its ``\\boxed{}`` unwrapped, or its GSM8K
``#### N`` line dropped) is a reply that must grade correct; the same solution with another
problem's answer written where its own was is a reply that must not."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hinttune.core.grading.answers import last_boxed


def math500(path: Path) -> list[tuple[str, str, str]]:
    """(gold, reply with its own answer, reply with the next problem's answer); solutions
    whose box is not the last statement of the answer (the gold is stated again after it)
    and neighbours with an equal answer are left out."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    out = []
    for i, row in enumerate(rows):
        solution, gold, other = row["solution"], row["answer"], rows[(i + 1) % len(rows)]["answer"]
        box = solution.rfind("\\boxed")
        inside = last_boxed(solution)
        if inside is None or "\\boxed" in solution[:box] or _same(gold, other):
            continue
        after = solution[box + len("\\boxed{") + len(inside) + 1:]
        if gold in after:
            continue
        out.append((gold, solution[:box] + inside + after, solution[:box] + other + after))
    return out


def gsm8k(path: Path) -> list[tuple[str, str, str]]:
    """(gold, the worked solution without its "#### N" line and calculator notes, the same
    with every mention of the answer in its last line replaced by the next problem's)."""
    rows = [json.loads(line)["answer"].split("####") for line in path.read_text().splitlines()]
    golds = [gold.strip().replace(",", "") for _, gold in rows]
    out = []
    for i, (solution, _) in enumerate(rows):
        gold, other = golds[i], golds[(i + 1) % len(golds)]
        text = re.sub(r"<<[^>]*>>", "", solution).strip()
        start = text.rfind("\n") + 1
        said = re.compile(r"(?<![\d.,])(?:\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?![\d])")
        last = said.sub(lambda m: other if float(m.group(0).replace(",", "")) == float(gold) else m.group(0),
                        text[start:])  # "$20.00" is 20
        if other == gold or last == text[start:]:
            continue  # the answer is not in the last line: nothing to swap
        out.append((gold, text, text[:start] + last))
    return out


def _same(gold: str, other: str) -> bool:
    """Two answers that are one value ("5" and "x=5")."""
    from math_verify import parse, verify

    return other.strip() == gold.strip() or bool(verify(parse(f"\\boxed{{{gold}}}"), parse(f"\\boxed{{{other}}}")))
