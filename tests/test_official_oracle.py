"""The official scripts as an external oracle: their own merge.py, run as a subprocess on our
``--policy official --layout official`` export, rebuilds our dataset byte for byte."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hinttune.construction.pipeline import build
from hinttune.construction.states import NO_HINT
from hinttune.core.config import validate_config

pytest.importorskip("math_verify")

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "official-hint-tuning"
MERGE = REFERENCE / "construction" / "merge.py"
TRACE = "First idea. Wait, second idea. Wait, third idea."

# name: (gold, think answer, what happens)
PROBLEMS = [
    ("alpha: 1+1", "2", f"<think>\n{TRACE}\n</think>\n\nThe answer is 2."),     # think right: No-Hint
    ("beta: 2+2", "4", f"<think>\n{TRACE}\n</think>\n\nThe answer is 4."),      # No-Hint
    ("gamma: 3+3", "6", f"<think>\n{TRACE}\n</think>\n\nThe answer is 0."),     # k = 0 works: Sparse-Hint
    ("delta: 4+4", "8", f"<think>\n{TRACE}\n</think>\n\nThe answer is 0."),     # k = 2, closes </think> itself
    ("eps: 5+5", "10", f"<think>\n{TRACE}\n</think>\n\nThe answer is 0."),      # nothing works: Full-Hint
    ("zeta: 6+6", "12", "<think>\nA. Wait, B.\n</think>\nWait, C.\n</think>\n\nThe answer is 0."),  # two </think>
    ("eta: 7+7", "14", f"<think>\n{TRACE}\n</think>\n\nThe answer is 14."),     # No-Hint
]
INSTRUCT = {
    "<|user|>gamma: 3+3\n<|assistant|>": "The answer is 6.",
    "delta: 4+4\n<|assistant|>First idea. Wait, second idea.": "so it is 8.</think>\n\nThe answer is 8.",
    # the official prefix search reads up to the last </think>: P_3 holds the first one
    "zeta: 6+6\n<|assistant|>A. Wait, B.\n</think>\nWait, C.": "  The answer is 12.\n",
    "<|user|>alpha: 1+1\n<|assistant|>": "The answer is 2.",
    "<|user|>eta: 7+7\n<|assistant|>": "  So: 14.  ",
}


def official_run(tmp_path: Path, problems=PROBLEMS, instruct=INSTRUCT, **extra):
    src = tmp_path / "problems.json"
    src.write_text(json.dumps([{"problem": p, "gold_answer": g} for p, g, _ in problems]))
    data = {"run_dir": str(tmp_path / "run"), "problems": {"source": str(src)},
            "think": {"backend": "fake", "model": "think", "answers": {f"{p}\n": t for p, _, t in problems}},
            "instruct": {"backend": "fake", "model": "org/instruct-model", "answers": instruct,
                         "default_reply": "The answer is 0."},
            "grading": {"grader": "math"}, "assemble": {"policy": "official"},
            "export": {"official_layout": True}, **extra}
    return build(validate_config(data))


def run_merge(official: Path, markers: list[str], out: Path) -> subprocess.CompletedProcess:
    """merge.py with its unseeded opener choice pinned to the openers we chose, in order."""
    pin = ("import json, random, runpy, sys\n"
           "markers = iter(json.loads(sys.argv[1]))\n"
           "random.choice = lambda seq: next(markers)\n"
           "sys.argv = sys.argv[2:]\n"
           "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", pin, json.dumps(markers), str(MERGE),
                           "--think", str(official / "think_results.json"),
                           "--grading", str(official / "llm_grading_think.json"),
                           "--instruct", str(official / "instruct_results.json"),
                           "--prefix", str(official / "instruct-model" / "k_prefix.json"),
                           "--output", str(out)], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not MERGE.exists(), reason="the official scripts are not beside the project")
def test_official_merge_rebuilds_our_dataset_byte_for_byte(tmp_path):
    result = official_run(tmp_path)
    states = {a.problem.split(":")[0]: (a.state, a.k_star) for a in result.assignments}
    assert states == {"alpha": ("No-Hint", 0), "beta": ("No-Hint", 0), "gamma": ("Sparse-Hint", 0),
                      "delta": ("Sparse-Hint", 2), "eps": ("Full-Hint", None),
                      "zeta": ("Sparse-Hint", 3), "eta": ("No-Hint", 0)}
    markers = [a.thinking for a in result.assignments if a.state == NO_HINT]
    ours = tmp_path / "run" / "export" / "hint_tuning.json"
    merged = tmp_path / "merged.json"
    done = run_merge(tmp_path / "run" / "export" / "official", markers, merged)
    assert done.returncode == 0, done.stderr
    assert merged.read_bytes() == ours.read_bytes()
    # the official whole-continuation answer, and the prefix up to the last </think>
    records = {r["instruction"].split(":")[0]: r["output"] for r in json.loads(ours.read_text())}
    assert records["delta"].endswith("second idea.\n</think>\n\nso it is 8.</think>\n\nThe answer is 8.")
    assert "A. Wait, B.\n</think>\nWait, C.\n</think>\n\nThe answer is 12." in records["zeta"]


def test_k_zero_is_a_fresh_sample_not_the_instruct_attempt(tmp_path):
    result = official_run(tmp_path)
    gamma = next(o for o in result.probes.values() if o.attempts and o.attempts[0].k == 0
                 and o.problem_id == result.problems[2].id)
    attempt = result.attempts["instruct"][(result.problems[2].id, 0)]
    assert gamma.attempts[0].key != attempt.key  # its own generation, with its own seed


def test_a_paper_policy_run_refuses_the_official_layout(tmp_path):
    from hinttune.core.errors import HinttuneError

    with pytest.raises(HinttuneError, match="policy=official"):
        official_run(tmp_path, assemble={"policy": "paper"})


PIPELINE = REFERENCE / "construction" / "pipeline.py"


def official_constants() -> dict:
    """The official judge prompt, executed from their source (its constants only)."""
    source = PIPELINE.read_text(encoding="utf-8")
    namespace: dict = {}
    exec(source[source.index("_GRADING_SYSTEM = ("):source.index("class LLMGrader")], namespace)
    return namespace


@pytest.mark.skipif(not PIPELINE.exists(), reason="the official scripts are not beside the project")
def test_the_official_judge_prompt_byte_for_byte(tmp_path):
    from hinttune.core.backends import BackendPool
    from hinttune.core.grading import GradeItem, Grader
    from hinttune.core.store import RunStore

    official = official_constants()
    data = {"think": {"backend": "fake", "model": "t"}, "instruct": {"backend": "fake", "model": "i"},
            "grading": {"grader": "judge"}, "assemble": {"policy": "official"}}
    item = GradeItem("k", " What is 1+1?\n", "2 ", "\nIt is 2.\n")  # fields are not stripped
    with RunStore(tmp_path) as store, BackendPool() as pool:
        Grader(validate_config(data), store, pool).grade([item])
        (key,) = [row[0] for row in store.db.execute("SELECT key FROM generations")]
        system, user = store.get(key).request["messages"]
    assert system["content"] == official["_GRADING_SYSTEM"]
    assert user["content"] == official["_grading_user_msg"](item.problem, item.gold, item.answer)


@pytest.mark.skipif(not PIPELINE.exists(), reason="the official scripts are not beside the project")
def test_the_chat_fallback_asks_to_continue_in_the_official_words():
    import ast

    from hinttune.core.backends.openai import CONTINUE_INSTRUCTION

    tree = ast.parse(PIPELINE.read_text(encoding="utf-8"))
    words = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
             and isinstance(node.value, str) and node.value.startswith("Continue your reasoning")]
    assert words == [CONTINUE_INSTRUCTION]


def test_official_segmentation_reads_to_the_last_close_tag():
    from hinttune.construction.segmentation import trace_episodes
    from hinttune.core.config import SegmentConfig

    text = "<think>\nA. Wait, B.\n</think>\nWait, C.\n</think>\n\nanswer"
    assert trace_episodes(text, SegmentConfig(), official=True) == ["A. ", "Wait, B.\n</think>\n", "Wait, C."]
    assert trace_episodes(text, SegmentConfig()) == ["A. ", "Wait, B."]


# traces merge.py cuts at the first </think> of the whole output, and attempts that failed
ODD = [
    ("alpha: 1+1", "2", f"<think>\n{TRACE}\n</think>\n\nThe answer is 2."),            # No-Hint
    ("beta: 2+2", "4", f"<think>\n{TRACE}\n</think>\n\nThe answer is 4."),             # instruct fails
    ("theta: 8+8", "16", "A. Wait, B.</think>\n<think>\nC.</think>\n\nThe answer is 0."),  # <think> after
    ("iota: 9+9", "18", "X. Wait, Y.</think>Z<think>W"),                                   # </think> first
    ("kappa: 1+2", "3", "<think>\nQ. Wait, R.\n</think>\n\nThe answer is 0."),          # Full-Hint
]


@pytest.mark.skipif(not MERGE.exists(), reason="the official scripts are not beside the project")
def test_malformed_traces_and_failed_attempts_as_merge_py_has_them(tmp_path):
    instruct = {"<|user|>alpha: 1+1\n<|assistant|>": "The answer is 2.", "<|user|>beta: 2+2\n<|assistant|>": "!fail"}
    result = official_run(tmp_path, problems=ODD, instruct=instruct)
    states = {a.problem.split(":")[0]: a.state for a in result.assignments}
    assert states == {"alpha": "No-Hint", "beta": "incomplete", "theta": "Full-Hint",
                      "iota": "Full-Hint", "kappa": "Full-Hint"}
    official = tmp_path / "run" / "export" / "official"
    for name in ("think_results.json", "instruct_results.json", "instruct-model/k_prefix.json"):
        text = (official / name).read_text()
        assert "partial output" not in text and "beta: 2+2" not in text  # the failed one: nowhere
    markers = [a.thinking for a in result.assignments if a.state == NO_HINT]
    merged = tmp_path / "merged.json"
    done = run_merge(official, markers, merged)
    assert done.returncode == 0, done.stderr
    ours = tmp_path / "run" / "export" / "hint_tuning.json"
    assert merged.read_bytes() == ours.read_bytes()
    records = {r["instruction"].split(":")[0]: r["output"] for r in json.loads(ours.read_text())}
    assert records["theta"].endswith("A. Wait, B.\n</think>\n\n<think>\nC.</think>\n\nThe answer is 0.")
    assert records["iota"].endswith("X. Wait, Y.\n</think>\n\nZ<think>W")


@pytest.mark.skipif(not PIPELINE.exists(), reason="the official scripts are not beside the project")
def test_keywords_that_overlap_segment_in_the_official_order():
    from hinttune.construction.segmentation import trace_episodes
    from hinttune.core.config import SegmentConfig

    source = PIPELINE.read_text(encoding="utf-8")
    namespace: dict = {"List": list, "re": __import__("re")}
    exec(source[source.index("class TextProcessor"):source.index("def create_cumulative_prefixes")], namespace)
    keywords = ["wait", "wait, wait", "hmm"]
    text = "A. Wait, wait, B. Hmm C. wait, waitD"
    theirs = namespace["TextProcessor"](keywords).split_by_reflection(text)
    ours = trace_episodes(f"<think>\n{text}\n</think>", SegmentConfig(keywords=keywords), official=True)
    assert ours == theirs and len(ours) == 6
    # the paper policy: the longest keyword wins where both match
    assert len(trace_episodes(f"<think>\n{text}\n</think>", SegmentConfig(keywords=keywords))) == 4
