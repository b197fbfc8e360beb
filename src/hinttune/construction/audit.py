"""A grading audit (``grading.audit: N``): N sampled graded replies of the run - attempts and
probe continuations whose gold is a short final answer - graded by both the math rules and the
judge, their agreement reported in the summary and every audited item in
``grading_audit.jsonl`` (problem, reply, both verdicts). It is the check a reviewer asks for
before trusting K*: where the two disagree, one of them is wrong about an item that decides a
state or a hint length.

Both verdicts are cached like any grade (the judge's calls are stored generations), so a
re-run costs nothing and a killed audit resumes. The sample is seeded by the run's seed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hinttune.core.backends import BackendPool
from hinttune.core.config import RunConfig
from hinttune.core.files import write_jsonl
from hinttune.core.grading import UNSURE, GradeItem, Grader, Verdict, is_short_gold
from hinttune.core.store import RunStore

FILE = "grading_audit.jsonl"
LISTED = 20  # disagreements listed in the summary (all are in the file)


def audit_items(cfg: RunConfig, graded: list[tuple[str, GradeItem]]) -> list[tuple[str, GradeItem]]:
    """The sample: (problem id, item) pairs with a short gold, ``grading.audit`` of them."""
    limit = cfg.grading.short_gold_chars
    pool = sorted({item.key: (pid, item) for pid, item in graded
                   if is_short_gold(item.gold, limit) and item.answer.strip()}.values(),
                  key=lambda pair: pair[1].key)
    return random.Random(f"{cfg.seed}/audit").sample(pool, min(cfg.grading.audit, len(pool)))


def run_audit(cfg: RunConfig, store: RunStore, pool: BackendPool, lender: Grader,
              graded: list[tuple[str, GradeItem]], run_dir: Path) -> dict[str, Any]:
    sample = audit_items(cfg, graded)
    items = [item for _, item in sample]
    verdicts: dict[str, dict[str, Verdict]] = {}
    for kind in ("math", "judge"):
        grader = Grader(cfg.model_copy(update={"grading": cfg.grading.model_copy(update={"grader": kind})}),
                        store, pool, lender=lender)
        try:
            verdicts[kind] = grader.grade(items, label="audit")
        finally:
            grader.close()
    rows = []
    for pid, item in sample:
        math, judge = verdicts["math"][item.key], verdicts["judge"][item.key]
        rows.append({"id": pid, "key": item.key, "gold": item.gold, "reply": item.answer,
                     "math": _said(math), "math_detail": math.detail,
                     "judge": _said(judge), "judge_detail": judge.detail[-300:],
                     "agree": None if None in (math.correct, judge.correct) else math.correct == judge.correct})
    write_jsonl(run_dir / FILE, rows)
    decided = [r for r in rows if r["agree"] is not None]
    agreed = sum(r["agree"] for r in decided)
    disagreements = [r for r in decided if not r["agree"]]
    return {"items": len(rows), "both_decided": len(decided), "agree": agreed,
            "agreement": round(agreed / len(decided), 4) if decided else None,
            "math_said_correct_judge_wrong": sum(r["math"] == "correct" for r in disagreements),
            "judge_said_correct_math_wrong": sum(r["judge"] == "correct" for r in disagreements),
            "math_undecided": sum(r["math"] == "undecided" for r in rows),
            # readings the math rules doubt ("unsure"): what ``hybrid`` sends to the judge
            "math_unsure": sum(r["math_detail"].split(": ", 1)[-1].startswith(UNSURE) for r in rows),
            "judge_undecided": sum(r["judge"] == "undecided" for r in rows),
            "file": FILE,
            "disagreements": [{"id": r["id"], "key": r["key"], "gold": r["gold"], "reply": r["reply"][-300:],
                               "math": r["math"], "judge": r["judge"]} for r in disagreements[:LISTED]]}


def _said(verdict: Verdict) -> str:
    return {True: "correct", False: "wrong", None: "undecided"}[verdict.correct]


def describe(audit: dict[str, Any]) -> str:
    """One line for the console."""
    if not audit["items"]:
        return "grading audit: no graded reply with a short gold answer to audit"
    if not audit["both_decided"]:
        return f"grading audit: {audit['items']} items, none decided by both graders"
    return (f"grading audit: math rules and judge agree on {audit['agree']} of {audit['both_decided']} "
            f"({100 * audit['agreement']:.0f}%); {audit['math_said_correct_judge_wrong']} passed only by "
            f"the math rules, {audit['judge_said_correct_math_wrong']} only by the judge; "
            f"{audit.get('math_unsure', 0)} of {audit['items']} math readings unsure (hybrid asks the judge "
            f"about these); see {audit['file']}")
