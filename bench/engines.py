"""How full hinttune keeps its engines while probing, measured on hinttune's own code: the real
``vllm`` backend, engine layer (``data_parallel_size``) and probe stage, with Math-Verify or the
instruct model as judge, against a simulated engine that stands in for the vLLM API the backend
uses (``bench/sim_vllm``: S sequence slots, ``tokens_per_step`` tokens per running sequence per
step, requests past S waiting, virtual time: after a step that finished requests the engine
waits until hinttune (the driver's threads, and a data-parallel worker's own) is idle, as a
GPU's step gives it time to react).

Outcomes follow bench/probe_cost.py's difficulty model (N = 40 episodes; 15% solved unaided,
40% with a hint, 45% by no prefix, which walk all 39 k); continuation lengths are lognormal
(median 2,000 tokens, sigma 1, capped at 16,384), judge replies 256 tokens; a continuation's text
has about 4 characters per token and an answer of its own after </think>, and the bench stops
if a K* differs from the scripted outcomes. The tokenizer is a
character-level stand-in (so the engine can read the prompt back); everything else is what a
GPU run executes. Printed: each engine's busy share over the probe stage (slots generating /
slots, per step, over the stage's steps); the busy share each engine would reach on the
requests it finished had they all been queued when the stage began (the best a scheduler that
cannot foresee lengths does: the stage ends draining to its last long requests); the stage's
makespan in steps against the lower bound tokens / (slots x tokens per step); the share of
probe tokens generated past K* (asked ahead and not needed); and hinttune's own CPU time per
finished request, twice: its event loop's thread (what must react before an engine's next step
can hold new work) and all of its threads and data-parallel worker processes (tokenizing
prompts included; the simulated engines' own work subtracted) - these last two are the bench
machine's, the others are not.

    python bench/engines.py                       # the issue's six rows, 1,000 problems
    python bench/engines.py --problems 60 --rows 1x256:math   # a quick look (CI runs this)
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import math
import os
import random
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
N = 40
JUDGE_TOKENS = 256


@lru_cache(maxsize=1)
def _wins() -> list[set[int]]:
    sys.path.insert(0, str(HERE))
    from probe_cost import difficulty_model

    table, _, _ = difficulty_model(int(os.environ.get("SIM_PROBLEMS", "1000")), N,
                                   int(os.environ.get("SIM_SEED", "0")), 0.0)
    return table


def _length(text: str) -> int:
    rng = random.Random(hashlib.blake2b(text.encode(), digest_size=8).digest())
    return int(min(16384, rng.lognormvariate(math.log(2000), 1.0)))


FILLER = "Let me check that step again. "
LETTERS = "abcdefghijklmnop"


def outcome(prompt: str, seed: int | None = None) -> tuple[int, str]:
    """(tokens, reply) the simulated engine gives a prompt: a judge call says Yes to a right
    answer; a probe continuation of P_k is right iff the difficulty model says k solves it.
    A continuation reads like a real one to the code that handles it: about 4 characters of
    reasoning per token (what the store writes), then after </think> an answer of its own (what
    Math-Verify or the judge reads: no two requests share a verdict's cache entry)."""
    if "## Attempt" in prompt:
        # the last one: the judge's system prompt shows the layout with placeholders first
        attempt = prompt.rsplit("## Attempt", 1)[1].split("## Correct answer", 1)[0]
        return JUDGE_TOKENS, "Checked.\nYes" if "answer is 7" in attempt else "Checked.\nNo"
    problem = int(prompt.split("Problem ", 1)[1].split(":", 1)[0])
    k = prompt.rsplit("<|assistant|>", 1)[-1].count("Step ")
    right = k in _wins()[problem]
    tokens = _length(prompt)
    draft = "".join(LETTERS[b % 16] for b in hashlib.blake2b(f"{seed}{prompt}".encode(), digest_size=6).digest())
    reasoning = FILLER * (4 * tokens // len(FILLER))
    return tokens, f"{reasoning}\n</think>\n\nDraft {draft}. The answer is {7 if right else 0}."


def make_tokenizer(folder: Path) -> Path:
    """A character-level tokenizer with a chat template, saved as a Hugging Face tokenizer."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={chr(i): i for i in range(1, 256)}, unk_token=chr(1)))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("(?m)."), behavior="isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=chr(1))
    fast.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                          "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    fast.save_pretrained(folder)
    return folder


def run_row(work: Path, problems: int, engines: int, slots: int, grader: str, args) -> dict:
    import yaml

    import hinttune.construction.pipeline as pipeline
    from hinttune.core.config import validate_config
    from hinttune.core.store import RunStore

    stats = work / "stats"
    stats.mkdir(parents=True)
    os.environ.update(SIM_VLLM_SLOTS=str(slots), SIM_VLLM_TOKENS_PER_STEP=str(args.tokens_per_step),
                      SIM_VLLM_STATS=str(stats), SIM_PROBLEMS=str(problems), SIM_VLLM_DRIVER=str(os.getpid()))
    _wins.cache_clear()
    source = work / "problems.jsonl"
    source.write_text("".join(json.dumps({"problem": f"Problem {i}: what is 3 + 4?", "gold_answer": "7"}) + "\n"
                              for i in range(problems)))
    trace = "".join(f"Step {j}. Wait, " for j in range(1, N)) + f"Step {N}."
    cfg = validate_config(yaml.safe_load(yaml.safe_dump({
        "run_dir": str(work / "run"), "problems": {"source": str(source)},
        "think": {"backend": "fake", "model": "think", "default_reply":
                  f"<think>\n{trace}\n</think>\n\nThe answer is 7."},
        "instruct": {"backend": "vllm", "model": "sim-model", "tokenizer": str(args.tokenizer),
                     "max_in_flight": slots, "data_parallel_size": engines, "engine_timeout": None},
        "grading": {"grader": grader}, "segment": {"keywords": ["wait"]},
        "probe": {"max_tokens": 16384}})))  # fill_batch: derived from the engines
    from vllm import sim_cpu  # the stand-in (bench/sim_vllm comes first on the path)

    window = {}
    real = pipeline.run_probes

    def timed(*a, **k):
        sim_cpu_before = sim_cpu()
        window["loop"], window["cpu"] = time.thread_time(), time.process_time()
        window["start"] = time.monotonic()
        try:
            return real(*a, **k)
        finally:
            window["end"], window["cpu"] = time.monotonic(), time.process_time() - window["cpu"]
            window["loop"] = time.thread_time() - window["loop"]
            window["sim_cpu"] = sim_cpu() - sim_cpu_before

    pipeline.run_probes = timed
    try:
        result = pipeline.build(cfg, until="probe")
    finally:
        pipeline.run_probes = real
    start, end = window["start"], window["end"]
    per_engine, reference, makespan, tokens, capacity = [], [], 0, 0, 0
    workers_cpu = 0.0  # hinttune's work in data-parallel worker processes
    for path in sorted(stats.glob("*.json")):
        data = json.loads(path.read_text())
        steps = [s for s in data["steps"] if s[0] >= start and s[1] <= end]
        if data["pid"] != os.getpid() and steps:
            workers_cpu += (steps[-1][4] - steps[0][4]) - (steps[-1][5] - steps[0][5])
        per_engine.append(sum(s[2] for s in steps) / (data["slots"] * max(1, len(steps))))
        reference.append(queued_at_start([n for added, n in data["finished"] if start <= added <= end],
                                         data["slots"], data["per_step"]))
        makespan = max(makespan, len(steps))
        tokens += sum(s[3] for s in steps)
        capacity += data["slots"] * data["per_step"]
    ideal = tokens / capacity if capacity else 0
    with RunStore(work / "run") as store:
        rows = store.db.execute("SELECT problem_id, completion_tokens FROM generations "
                                "WHERE stage='probe' AND status='ok'").fetchall()
        judged = store.db.execute("SELECT COUNT(*) FROM generations WHERE stage='grade' "
                                  "AND role='judge:probe'").fetchone()[0]
    k_star = {pid: o.k_star for pid, o in result.probes.items()}
    # the scripted outcomes decide K*: the first k the model gets right (k = N, the whole
    # trace, is no hint)
    index = {p.id: int(p.problem.split("Problem ", 1)[1].split(":", 1)[0]) for p in result.problems}
    wrong = sum(k != min((w for w in _wins()[index[pid]] if 1 <= w < N), default=None)
                for pid, k in k_star.items())
    past = sum(t or 0 for pid_k, t in rows
               if k_star.get(pid_k.split("#k")[0]) is not None
               and int(pid_k.rsplit("#k", 1)[1]) > k_star[pid_k.split("#k")[0]])
    probe_tokens = sum(t or 0 for _, t in rows)
    finished = len(rows) + judged
    return {"busy": per_engine, "reference": reference, "makespan": makespan / ideal if ideal else 0,
            "past": past / probe_tokens if probe_tokens else 0,
            "ms_per_request": 1000 * max(0.0, window["cpu"] - window["sim_cpu"] + workers_cpu) / max(1, finished),
            "loop_ms_per_request": 1000 * window["loop"] / max(1, finished),
            "seconds": end - start, "requests": finished, "probed": len(result.probes),
            "wrong_k_star": wrong, "incomplete": sum(o.incomplete is not None for o in result.probes.values())}


def queued_at_start(lengths: list[int], slots: int, per_step: int) -> float:
    """The busy share an engine would reach on the requests it finished had they all been in
    its queue when the stage began, in the order they came (no request waiting on another's
    verdict, nor on hinttune): what a scheduler that cannot know lengths before generating
    reaches at best on this work - the stage still ends with the slots draining to the last
    long requests, and only knowing lengths ahead (longest first) would avoid that."""
    free = [0] * slots
    for n in lengths:
        heapq.heappush(free, heapq.heappop(free) + -(-n // per_step))
    span = max(free, default=0)
    return sum(lengths) / (per_step * slots * span) if span else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--rows", nargs="*", default=["1x256:math", "1x256:judge", "1x1024:math",
                                                      "1x1024:judge", "4x256:math", "4x256:judge"])
    parser.add_argument("--tokens-per-step", type=int, default=128)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE / "sim_vllm"))  # the stand-in vllm, here and in engine processes
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE / "sim_vllm"), str(HERE),
                                                os.environ.get("PYTHONPATH", "")])
    root = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    args.tokenizer = make_tokenizer(root / "tokenizer")
    print(f"{args.problems} problems, N = {N}; {args.tokens_per_step} tokens per sequence per step\n")
    print("| engines x slots | grader | probe busy per engine | all queued at the start | "
          "makespan vs tokens/slots | past K* | hinttune ms per request: event loop / all threads "
          "| probe seconds |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
    for row in args.rows:
        shape, grader = row.split(":")
        engines, slots = map(int, shape.split("x"))
        found = run_row(root / row.replace(":", "-"), args.problems, engines, slots, grader, args)
        if found["wrong_k_star"] or found["incomplete"]:
            sys.exit(f"{row}: {found['wrong_k_star']} of {found['probed']} K* differ from the scripted "
                     f"outcomes, {found['incomplete']} searches incomplete")
        busy = ", ".join(f"{100 * b:.0f}%" for b in found["busy"])
        reference = ", ".join(f"{100 * b:.0f}%" for b in found["reference"])
        print(f"| {engines} x {slots} | {grader} | {busy} | {reference} | {found['makespan']:.2f}x | "
              f"{100 * found['past']:.1f}% | {found['loop_ms_per_request']:.2f} / {found['ms_per_request']:.2f} | "
              f"{found['seconds']:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
