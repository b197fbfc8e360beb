"""The summary a person reads: table and plot show every outcome with its count."""

from collections import Counter

import pytest

from hinttune.construction.states import Assignment
from hinttune.construction.outputs.summary import plural, summarize, summary_table, write_plots


def assignment(pid, state, k=None):
    return Assignment(pid, f"problem {pid}", state, k, 5)


def meta_for(assignments):
    return {a.problem_id: {"id": a.problem_id, "state": a.state, "output_tokens": 10 + len(a.problem_id),
                           "token_unit": "tokens"} for a in assignments}


@pytest.mark.parametrize("states", [
    ["No-Hint", "Sparse-Hint", "unsolved", "unsolved", "incomplete"],  # one K* value
    ["unsolved", "incomplete"],  # nothing exported: empty panels
])
def test_plot_shows_every_outcome_and_survives_one_or_no_values(tmp_path, states):
    pytest.importorskip("matplotlib")
    assignments = [assignment(str(i), s, 1 if s == "Sparse-Hint" else None) for i, s in enumerate(states)]
    meta = meta_for(assignments)
    summary = summarize(assignments, meta, Counter(), {})
    assert summary["states"]["unsolved"] == states.count("unsolved")
    assert summary["states"]["incomplete"] == 1
    (path,) = write_plots(summary, [meta[a.problem_id] for a in assignments if a.exported], tmp_path)
    assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"


def test_titles_count_in_words():
    assert plural(1, "record") == "1 record" and plural(9, "record") == "9 records"
    summary = summarize([assignment("a", "No-Hint", 0)], meta_for([assignment("a", "No-Hint", 0)]),
                        Counter(), {})
    assert summary_table(summary).title == "Hint Tuning dataset: 1 record from 1 problem"


def test_the_plot_is_drawn_again_only_when_its_data_changed(tmp_path, monkeypatch):
    from hinttune.construction.outputs import summary as module

    calls = []
    real = module.write_plots
    monkeypatch.setattr(module, "write_plots", lambda *a: calls.append(1) or real(*a))
    pytest.importorskip("matplotlib")
    one = [assignment("a", "No-Hint", 0)]
    two = one + [assignment("b", "Sparse-Hint", 1)]
    for assignments in (one, one, two, two):
        meta = meta_for(assignments)
        module.write_summary(summarize(assignments, meta, Counter(), {}), list(meta.values()), tmp_path)
        if assignments is two and len(calls) == 2:
            (tmp_path / "summary.png").unlink()  # a lost plot is drawn again
    assert len(calls) == 3  # one, two, and two again after its plot was lost


def test_the_caption_says_what_share_hybrid_sent_to_the_judge():
    one = [assignment("a", "No-Hint", 0)]
    hybrid = summarize(one, meta_for(one), Counter({"math": 6, "judge": 2}), {})
    assert "verdicts by math: 6, judge: 2 (25% sent to the judge)" in summary_table(hybrid).caption
    judge_only = summarize(one, meta_for(one), Counter({"judge": 8}), {})
    assert "sent to the judge" not in summary_table(judge_only).caption
