"""The grading audit: sampled replies graded by both the math rules and the judge, agreement in
the summary, every item in grading_audit.jsonl, and nothing asked twice on a re-run."""

import json

import pytest

from hinttune.construction.audit import describe
from hinttune.construction.pipeline import build
from hinttune.core.config import validate_config
from hinttune.core.store import RunStore

from test_pipeline import config_dict

pytest.importorskip("math_verify")


def audited(tmp_path, n):
    judge = {"backend": "fake", "model": "judge", "default_reply": "Matches.\nYes",
             "answers": {"## Attempt\nThe answer is 0.": "Off.\nNo",
                         "## Attempt\nso it is 4.": "It does not show its work.\nNo"}}
    return validate_config(config_dict(tmp_path, grading={"grader": "math", "audit": n, "judge": judge}))


def test_the_audit_reports_agreement_and_lists_the_disagreements(tmp_path):
    cfg = audited(tmp_path, 100)
    result = build(cfg)
    audit = result.summary["grading_audit"]
    rows = [json.loads(line) for line in (tmp_path / "run" / "grading_audit.jsonl").open()]
    assert audit["items"] == len(rows) == len({r["key"] for r in rows}) >= 10  # every graded reply
    assert len({r["id"] for r in rows}) == 4  # attempts and continuations of all four problems
    (odd,) = [r for r in rows if not r["agree"]]  # the judge refuses beta's right continuation
    assert (odd["reply"], odd["math"], odd["judge"]) == ("so it is 4.", "correct", "wrong")
    assert audit["agree"] == audit["both_decided"] - 1 and audit["math_said_correct_judge_wrong"] == 1
    assert audit["disagreements"][0]["key"] == odd["key"]
    assert "agree on" in describe(audit) and "1 passed only by the math rules" in describe(audit)
    # every reply here ends in one clear statement: none would go to the judge under hybrid
    assert audit["math_unsure"] == 0 and "0 of" in describe(audit).split("unsure")[0].rsplit(";", 1)[-1]
    # the dataset is the math grader's, as configured: the audit changes no state
    assert {a.state for a in result.assignments} == {"No-Hint", "Sparse-Hint", "Full-Hint", "unsolved"}
    with RunStore(tmp_path / "run") as store:
        asked = store.count()
    again = build(cfg)  # a re-run: every verdict and judge reply comes from the store
    with RunStore(tmp_path / "run") as store:
        assert store.count() == asked
    assert again.summary["grading_audit"] == audit


def test_the_sample_is_seeded_and_bounded(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = build(audited(tmp_path / "a", 3)).summary["grading_audit"]
    second = build(audited(tmp_path / "b", 3)).summary["grading_audit"]
    assert first["items"] == second["items"] == 3
    keys = [[json.loads(line)["key"] for line in (tmp_path / d / "run" / "grading_audit.jsonl").open()]
            for d in ("a", "b")]
    assert keys[0] == keys[1]
