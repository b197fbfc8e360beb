"""``hinttune eval``: accuracy and reasoning length on math benchmarks, as the paper measures
them: its prompt, temperature 0.6, top-p 0.95, 32,768 new tokens, n samples per problem,
Math-Verify answer checking (in worker processes with timeouts), tokens counted with the
evaluated model's tokenizer. Every sample goes through the run store, so a re-run only
generates what is missing."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from statistics import mean
from typing import Any

from hinttune.core.reasoning import graded_part
from hinttune.core.backends import BackendPool
from hinttune.core.backends.base import Request
from hinttune.core.chat import TokenCounter
from hinttune.core.config import EvalConfig, dump_config
from hinttune.core.files import atomic_writer, write_json, write_text
from hinttune.core.generations import Job, run_jobs
from hinttune.core.grading import MATH_RULES, MathVerifier
from hinttune.core.problems import TAG_FIELDS
from hinttune.core.store import RunStore
from hinttune.evaluation.benchmarks import BENCHMARKS, load_benchmark
from hinttune.evaluation.metrics import UNDECIDED, accuracy, decided, majority_accuracy, reasoning_tokens

log = logging.getLogger(__name__)


def reasoning_closed(text: str) -> bool:
    """Whether an output's reasoning ended: no think block at all counts as open when cut."""
    return "</think>" in text


def answer_part(text: str, finish: str | None, truncated: str) -> str:
    """What is graded. An output cut by the length limit before its reasoning closed has no
    answer under ``no_answer``; under ``whole_output`` (the paper's harness) it is graded whole,
    as lighteval does when the prompt, not the output, opens <think>."""
    if finish == "length" and not reasoning_closed(text):
        return text if truncated == "whole_output" else ""
    return graded_part(text)


def eval_request(cfg: EvalConfig, problem: str) -> Request:
    model = cfg.model
    messages = [{"role": "system", "content": model.system_prompt}] if model.system_prompt else []
    messages.append({"role": "user", "content": cfg.prompt_template.replace("{problem}", problem)})
    return Request(messages=messages, sampling=cfg.sampling,
                   continuation=model.response_prefix or None,
                   template_kwargs=dict(model.chat_template_kwargs))


def sample_metrics(samples: list[dict[str, Any]]) -> dict[str, float]:
    """avg@n with both standard errors, pass@k and maj@n from a benchmark's decided samples."""
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for sample in decided(samples):
        by_problem.setdefault(sample["id"], []).append(sample)
    groups = list(by_problem.values())
    return {**accuracy([[s["correct"] for s in g] for g in groups]),
            "maj@n": majority_accuracy([[(s["extracted_answer"], s["correct"]) for s in g] for g in groups])}


def breakdown(samples: list[dict[str, Any]], tag: str) -> dict[str, dict[str, float]]:
    """avg@n per value of a problem field (MATH-500's level or subject)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        groups.setdefault(str(sample.get(tag, "?")), []).append(sample)
    out = {}
    for value in sorted(groups, key=lambda v: (len(v), v)):
        m = sample_metrics(groups[value])
        out[value] = {"problems": len({s["id"] for s in groups[value]}), "avg@n": m["avg@n"],
                      "stderr": m["stderr"]}
    return out


def evaluate_benchmark(cfg: EvalConfig, name: str, store: RunStore, pool: BackendPool,
                       verifier: MathVerifier, count: TokenCounter) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    problems = load_benchmark(name, cfg)
    prefix = cfg.model.response_prefix
    n = cfg.samples(name)
    jobs = [Job(p.id, i, eval_request(cfg, p.problem), output_prefix=prefix)
            for p in problems for i in range(n)]
    backend = pool.get(cfg.model)
    records = run_jobs(store, backend, "eval", name, jobs, cfg.seed, label=f"eval · {name}")
    samples, checks = [], []
    for p in problems:
        prompt = backend.prompt_text(eval_request(cfg, p.problem))  # what the model saw
        for i in range(n):
            rec = records.get((p.id, i))
            text = (rec.text or "") if rec is not None and rec.status == "ok" else ""
            finish = rec.finish_reason if rec else None
            samples.append({"id": p.id, "sample": i, "problem": p.problem, **p.tags, "prompt": prompt,
                            "gold": p.gold_answer, "output": text, "failed": rec is None or rec.status != "ok",
                            "finish_reason": finish,
                            # what the engine generated, as vLLM counts it (the stop token
                            # included, the response prefix not): at most max_tokens
                            "generated_tokens": rec.completion_tokens if rec is not None else None})
            checks.append((p.gold_answer, answer_part(text, finish, cfg.truncated), True))
    verdicts = verifier.check_many(checks)
    # a check that timed out or crashed is asked once more (a busy machine, a stuck worker)
    again = [i for i, v in enumerate(verdicts) if v[0] in ("timeout", "error")]
    for i, verdict in zip(again, verifier.check_many([checks[i] for i in again])):
        verdicts[i] = verdict
    for sample, (status, _, extracted) in zip(samples, verdicts):
        sample["correct"] = status == "correct"
        sample["extracted_answer"] = extracted
        sample["check"] = status
        generated = sample.pop("generated_tokens")
        sample["output_tokens"] = generated if generated is not None else count(sample["output"])
        sample["reasoning_tokens"], sample["think_closed"] = reasoning_tokens(sample["output"], count)
    ok = [s for s in samples if not s["failed"]]
    metrics = {
        "problems": len(problems), "n": n, "samples": len(samples), "failed": len(samples) - len(ok),
        **sample_metrics(samples),
        "mean_output_tokens": mean(s["output_tokens"] for s in ok) if ok else 0.0,
        "mean_reasoning_tokens": mean(s["reasoning_tokens"] for s in ok) if ok else 0.0,
        "unclosed_think": sum(not s["think_closed"] for s in ok),
        "truncated_share": sum(s["finish_reason"] == "length" for s in ok) / len(ok) if ok else 0.0,
        # a check that could not decide (timeout, crash, unparseable gold) is not a wrong
        # answer: left out of the accuracy, counted here
        "undecided_checks": sum(s["check"] in UNDECIDED for s in samples),
        "problems_scored": len({s["id"] for s in decided(samples)}),
        "truncated": cfg.truncated,
        "no_answer": sum(s["check"] == "no_answer" for s in ok),
        "token_unit": count.unit,
        "source": cfg.data_files.get(name) or cfg.hub.get(name) or (BENCHMARKS[name].hub if name in BENCHMARKS else ""),
        **{f"by_{tag}": breakdown(samples, tag) for tag in TAG_FIELDS
           if any(tag in s for s in samples)},
    }
    return metrics, samples


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", dump_config(cfg))
    from hinttune import __version__
    from hinttune.core.fingerprint import weights_fingerprint
    from hinttune.core.provenance import versions

    results: dict[str, Any] = {"model": cfg.model.model, "backend": cfg.model.backend, "n": cfg.n,
                               "model_fingerprint": weights_fingerprint(cfg.model.model, cfg.model.gguf_file),
                               "versions": versions(),  # results drift across engine releases
                               "revision": getattr(cfg.model, "revision", None),
                               "hinttune_version": __version__, "prompt_template": cfg.prompt_template,
                               "grader": f"math-verify (rules {MATH_RULES})", "truncated": cfg.truncated,
                               "sampling": cfg.sampling.model_dump(), "benchmarks": {}}
    count = TokenCounter(cfg.model)
    verifier = MathVerifier(cfg.math_timeout)
    try:
        with RunStore(out) as store, BackendPool() as pool:
            for name in cfg.benchmarks:
                metrics, samples = evaluate_benchmark(cfg, name, store, pool, verifier, count)
                results["benchmarks"][name] = metrics
                with atomic_writer(out / f"samples_{name}.jsonl") as handle:
                    for sample in samples:
                        handle.write(json.dumps(sample, ensure_ascii=False) + "\n")
    finally:
        verifier.close()
    write_json(out / "results.json", results)
    return results

