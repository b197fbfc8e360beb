"""One pipeline per problem: a problem is probed as soon as its own attempts are graded, while
the think model still writes other problems' traces; what comes out does not depend on the
order results came back in."""

import time

import pytest

from hinttune.construction.pipeline import build
from hinttune.core.backends.fake import FakeBackend
from hinttune.core.config import validate_config
from test_pipeline import config_dict

pytest.importorskip("math_verify")


def export_bytes(run):
    return {path.relative_to(run).as_posix(): path.read_bytes()
            for path in sorted((run / "export").rglob("*")) if path.is_file() and path.suffix in (".json", ".jsonl")}


def test_a_problem_is_probed_while_the_think_model_still_writes(tmp_path, monkeypatch):
    replies = []  # (model, a probe continuation?, when it was answered)
    real = FakeBackend._answer

    def logged(self, request):
        out = real(self, request)
        replies.append((self.cfg.model, "Wait" in (request.continuation or ""), time.monotonic()))
        return out

    monkeypatch.setattr(FakeBackend, "_answer", logged)
    cfg = validate_config(config_dict(tmp_path))
    cfg.think.delay = 1.0  # one think trace after another, a second each (Math-Verify starts meanwhile)
    result = build(cfg)
    assert {a.problem.split(":")[0]: a.state for a in result.assignments}["beta"] == "Sparse-Hint"
    last_trace = max(t for model, _, t in replies if model == "think")
    probes = [t for model, is_probe, t in replies if model == "instruct" and is_probe]
    assert probes and min(probes) < last_trace  # a probe was answered before the last trace was


def test_the_same_results_give_the_same_dataset_in_any_order(tmp_path, monkeypatch):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    first = build(validate_config(config_dict(tmp_path / "a")))
    # the engines now answer in the order they were asked, and the instruct model slowly
    monkeypatch.setattr(FakeBackend, "generate", lambda self, requests: (
        (index, self._answer(request)) for index, request in enumerate(requests)))
    second = build(validate_config(config_dict(tmp_path / "b", delay=0.02)))
    assert export_bytes(tmp_path / "a" / "run") == export_bytes(tmp_path / "b" / "run")
    assert [a.state for a in first.assignments] == [a.state for a in second.assignments]
    assert list(first.episodes) == list(second.episodes) == [p.id for p in first.problems[:len(first.episodes)]]


def test_vllm_engines_of_one_run_divide_the_gpu_memory():
    def shares(**models):
        cfg = validate_config({"think": {"backend": "vllm", "model": "t"},
                               "instruct": {"backend": "vllm", "model": "i"}, **models})
        return [getattr(m, "gpu_memory_utilization", None) for m in (cfg.think, cfg.instruct, *cfg.probes)]

    assert shares() == [0.3, 0.6]  # an instruct model two parts to the think model's one
    assert shares(instruct=[{"backend": "vllm", "model": "i"}, {"backend": "vllm", "model": "j"}]) \
        == [0.18, 0.36, 0.36]
    assert shares(think={"backend": "vllm", "model": "t", "gpu_memory_utilization": 0.5}) == [0.5, 0.4]
    # one engine in both roles: vLLM's own default
    assert shares(instruct={"backend": "vllm", "model": "t"}) == [None, None]
    assert shares(instruct={"backend": "openai", "model": "i"})[0] is None


def test_the_think_attempts_reach_the_engines_first(tmp_path, monkeypatch):
    """The longest requests of a run, the think traces, are asked before any instruct attempt
    (on one engine in both roles they would otherwise queue behind them)."""
    asked = []
    real = FakeBackend.submit

    def logged(self, request, affinity=None):
        asked.append(self.cfg.model)
        return real(self, request, affinity)

    monkeypatch.setattr(FakeBackend, "submit", logged)
    build(validate_config(config_dict(tmp_path)), until="attempts")
    thinks = asked.count("think")
    assert thinks == 4 and asked[:thinks] == ["think"] * thinks, asked
