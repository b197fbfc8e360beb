"""The whole construction - attempts, grades, segments, probes - measured on hinttune's own code:
the real ``vllm`` backend, engine layer and per-problem pipeline, with Math-Verify or the
instruct model as judge, against simulated engines that stand in for the vLLM API the backend
uses (``bench/sim_vllm``): the think model's engine and the instruct model's, both resident,
each with its share of the slots of one GPU set (``--think-share``), S sequence slots in all,
``tokens_per_step`` tokens per running sequence per step, requests past an engine's slots
waiting. Every engine steps on one virtual clock: a tick after one that finished requests
starts only once hinttune has reacted to them (its threads idle) and each engine has taken
what hinttune asked of it, so load on the machine cannot move the figures. Data-parallel
replicas (4 x 256) run in this process as hinttune's ``Engines`` over in-process backends, so
that they share the clock (the worker-process pipe between them is tested in
tests/test_engines.py, not timed here).

Workload (1,000 problems by default): think traces of N = 40 episodes whose lengths are
lognormal (median 6,000 tokens, sigma 0.7, at most 32,768; the text itself is short, so
prompts stay small - the engine counts the scripted length), 85% of them right; instruct
attempts and probe continuations lognormal (median 2,000, sigma 1, at most 16,384) with
outcomes from bench/probe_cost.py's difficulty model (15% solved unaided, 40% with a hint, 45%
by no prefix, which walk all 39 k); judge replies 256 tokens. The bench stops if a K* differs
from the scripted outcomes.

Printed per row: the GPU makespan in ticks against (all tokens / all slots + the longest
generation), the lower bound of any schedule; what an ideal schedule reaches on the same
requests (lengths known in advance, longest first, no dependencies between them; each model on
its own slots / all slots pooled); each engine's busy share; each stage's share of the GPU and
its drain (ticks from its last request admitted to its last finished, over the makespan); the
share of probe tokens generated past K*; hinttune's CPU per finished request, on its event
loop and in all its threads (the simulated engines' own work subtracted) - these last two are
the bench machine's, the others are not.

    python bench/construction.py                      # the six rows, 1,000 problems
    python bench/construction.py --problems 60 --rows 1x256:math   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import json
import math
import os
import queue
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


def _lognormal(key: str, median: float, sigma: float, cap: int) -> int:
    rng = random.Random(hashlib.blake2b(key.encode(), digest_size=8).digest())
    return max(1, int(min(cap, rng.lognormvariate(math.log(median), sigma))))


FILLER = "Let me check that step again. "
LETTERS = "abcdefghijklmnop"
TRACE = "".join(f"Step {j}. Wait, " for j in range(1, N)) + f"Step {N}."


def outcome(prompt: str, seed: int | None, role: str) -> tuple[str, int, str]:
    """(kind, tokens, reply) the simulated engine gives a prompt. A judge call says Yes to a
    right answer; the think model writes its trace (lognormal length, short text) and an
    answer; an instruct reply continuing P_k is right iff the difficulty model says k solves
    the problem (k = 0: the instruct attempt). A continuation reads like a real one to the code
    that handles it: about 4 characters of reasoning per token (what the store writes), then
    after </think> an answer of its own (what Math-Verify or the judge reads: no two requests
    share a verdict's cache entry)."""
    if "## Attempt" in prompt:
        # the last one: the judge's system prompt shows the layout with placeholders first
        attempt = prompt.rsplit("## Attempt", 1)[1].split("## Correct answer", 1)[0]
        return "judge", JUDGE_TOKENS, "Checked.\nYes" if "answer is 7" in attempt else "Checked.\nNo"
    problem = int(prompt.split("Problem ", 1)[1].split(":", 1)[0])
    if role == "think":
        right = random.Random(problem).random() < 0.85
        return "think", _lognormal(f"think{problem}", 6000, 0.7, 32768), \
            f"{TRACE}\n</think>\n\nThe answer is {7 if right else 0}."
    k = prompt.rsplit("<|assistant|>", 1)[-1].count("Step ")
    right = k in _wins()[problem]
    tokens = _lognormal(prompt, 2000, 1.0, 16384)
    draft = "".join(LETTERS[b % 16] for b in hashlib.blake2b(f"{seed}{prompt}".encode(), digest_size=6).digest())
    reasoning = FILLER * (4 * tokens // len(FILLER))
    return "probe" if k else "attempt", tokens, f"{reasoning}\n</think>\n\nDraft {draft}. The answer is {7 if right else 0}."


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

    import hinttune.core.backends.engines as engine_layer
    from hinttune.construction.pipeline import build
    from hinttune.construction.per_problem import PerProblem
    from hinttune.core.backends.vllm import VLLMBackend
    from hinttune.core.grading import MathVerifier
    from hinttune.core.config import validate_config
    from hinttune.core.store import RunStore

    stats = work / "stats"
    stats.mkdir(parents=True)
    think_slots = max(1, round(slots * args.think_share))
    instruct_slots = slots - think_slots
    if args.one_model_at_a_time:  # code that loads one model at a time gives each all the slots
        think_slots = instruct_slots = slots
    os.environ.update(SIM_VLLM_SLOTS_THINK=str(think_slots), SIM_VLLM_SLOTS_INSTRUCT=str(instruct_slots),
                      SIM_VLLM_TOKENS_PER_STEP=str(args.tokens_per_step), SIM_VLLM_STATS=str(stats),
                      SIM_PROBLEMS=str(problems), SIM_VLLM_DRIVER=str(os.getpid()))
    _wins.cache_clear()
    source = work / "problems.jsonl"
    source.write_text("".join(json.dumps({"problem": f"Problem {i}: what is 3 + 4?", "gold_answer": "7"}) + "\n"
                              for i in range(problems)))
    engine = {"backend": "vllm", "tokenizer": str(args.tokenizer), "data_parallel_size": engines,
              "engine_timeout": None, "max_model_len": None}
    cfg = validate_config(yaml.safe_load(yaml.safe_dump({
        "run_dir": str(work / "run"), "problems": {"source": str(source)},
        "think": {**engine, "model": "sim-think", "max_in_flight": think_slots, "response_prefix": "<think>\n"},
        "instruct": {**engine, "model": "sim-model", "max_in_flight": instruct_slots},
        "grading": {"grader": grader}, "segment": {"keywords": ["wait"]},
        "probe": {"max_tokens": 16384}})))  # fill_batch: derived from the engines
    from vllm import CLOCK, sim_cpu  # the stand-in (bench/sim_vllm comes first on the path)

    CLOCK.__init__()
    in_process = engine_layer.ProcessEngine  # replicas in this process: one clock for all
    engine_layer.ProcessEngine = lambda cfg, rank: VLLMBackend(cfg.model_copy(update={"data_parallel_size": 1}))
    loading, grading, running = VLLMBackend.load, MathVerifier.__init__, PerProblem._run

    def load(backend):  # the clock sees what hinttune asked of each engine and not added yet
        if not isinstance(backend._to_encode, Tokenizing):  # before its thread starts
            backend._to_encode = Tokenizing()
        loading(backend)
        CLOCK.undelivered[id(backend.engine)] = lambda: not (backend._inbox.empty() and backend._to_encode.idle())

    def verifier(math, *a, **kw):  # and whether a Math-Verify check is on its way
        grading(math, *a, **kw)
        CLOCK.quiet.append(lambda: math.in_flight == 0)

    async def pipeline(per_problem, problems):  # and whether the event loop has work waiting
        loop = asyncio.get_running_loop()
        CLOCK.quiet.append(lambda: not loop._ready)
        await running(per_problem, problems)

    VLLMBackend.load, MathVerifier.__init__, PerProblem._run = load, verifier, pipeline
    sim_before = sim_cpu()
    loop, cpu = time.thread_time(), time.process_time()
    started = time.monotonic()
    try:
        result = build(cfg, until="probe")
    finally:
        engine_layer.ProcessEngine = in_process
        VLLMBackend.load, MathVerifier.__init__, PerProblem._run = loading, grading, running
    seconds = time.monotonic() - started
    loop, cpu = time.thread_time() - loop, time.process_time() - cpu - (sim_cpu() - sim_before)
    found = measure([json.loads(path.read_text()) for path in sorted(stats.glob("*.json"))],
                    engines * slots)
    with RunStore(work / "run") as store:
        rows = store.db.execute("SELECT problem_id, completion_tokens FROM generations "
                                "WHERE stage='probe' AND status='ok'").fetchall()
        finished = store.db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
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
    return {**found, "past": past / probe_tokens if probe_tokens else 0,
            "ms_per_request": 1000 * max(0.0, cpu) / max(1, finished),
            "loop_ms_per_request": 1000 * loop / max(1, finished), "seconds": seconds,
            "requests": finished, "probed": len(result.probes), "wrong_k_star": wrong,
            "incomplete": sum(o.incomplete is not None for o in result.probes.values())}


class Tokenizing(queue.SimpleQueue):
    """The vLLM backend's tokenizer queue, which also knows when the prompt it handed out last
    has been encoded (the thread asks for the next one only then)."""

    def __init__(self):
        super().__init__()
        self.holding = False

    def get(self, *args, **kwargs):
        self.holding = False
        item = super().get(*args, **kwargs)
        self.holding = True
        return item

    def idle(self) -> bool:
        return self.empty() and not self.holding


KINDS = {"think": "think attempts", "attempt": "instruct attempts", "probe": "probes", "judge": "judge"}


def measure(engines: list[dict], slots: int) -> dict:
    """The figures of one row from what each simulated engine recorded (``slots``: the GPUs'
    in all)."""
    ticks = [step[0] for e in engines for step in e["steps"]]
    first, last = min(ticks), max(ticks)
    makespan = last - first + 1
    per_step = engines[0]["per_step"]
    tokens = sum(step[2] for e in engines for step in e["steps"])
    finished = [f for e in engines for f in e["finished"]]
    longest = max(f[4] for f in finished)
    bound = tokens / (slots * per_step) + -(-longest // per_step)
    busy = [sum(sum(step[1].values()) for step in e["steps"]) / (e["slots"] * makespan) for e in engines]
    stages = {}
    for kind in KINDS:
        mine = [f for f in finished if f[0] == kind]
        if not mine:
            continue
        used = sum(step[1].get(kind, 0.0) for e in engines for step in e["steps"])
        drain = max(f[3] for f in mine) - max(f[2] for f in mine)
        stages[kind] = (used / (slots * makespan), drain / makespan)
    split = max(longest_first([-(-f[4] // per_step) for f in finished if (f[0] == "think") == (e["role"] == "think")],
                              sum(x["slots"] for x in engines if x["role"] == e["role"]))
                for e in engines)
    pooled = longest_first([-(-f[4] // per_step) for f in finished], slots)
    return {"makespan": makespan / bound, "busy": busy, "roles": [e["role"] for e in engines],
            "stages": stages, "ideal_split": split / bound, "ideal_pooled": pooled / bound}


def longest_first(steps: list[int], slots: int) -> int:
    """The span of requests of known lengths, longest first, each on the first free slot."""
    free = [0] * slots
    for n in sorted(steps, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + n)
    return max(free, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--rows", nargs="*", default=["1x256:math", "1x256:judge", "1x1024:math",
                                                      "1x1024:judge", "4x256:math", "4x256:judge"])
    parser.add_argument("--tokens-per-step", type=int, default=128)
    parser.add_argument("--one-model-at-a-time", action="store_true",
                        help="give each model all the slots (to bench code that loads one model at a time)")
    parser.add_argument("--think-share", type=float, default=0.2,
                        help="the think engine's share of each GPU's slots (the rest: the instruct engine's)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE / "sim_vllm"))  # the stand-in vllm
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE / "sim_vllm"), str(HERE),
                                                os.environ.get("PYTHONPATH", "")])
    root = Path(tempfile.mkdtemp(prefix="bench-construction-"))
    args.tokenizer = make_tokenizer(root / "tokenizer")
    print(f"{args.problems} problems, N = {N}; {args.tokens_per_step} tokens per sequence per step; "
          f"think engine: {100 * args.think_share:.0f}% of each GPU's slots\n")
    print("| GPUs x slots | grader | makespan / bound | ideal: split / pooled | busy per engine (think, instruct) | "
          + " | ".join(f"{name}: GPU share, drain" for name in KINDS.values())
          + " | past K* | hinttune ms per request: event loop / all threads | seconds |")
    print("| --- | --- | ---: | ---: | --- | " + " | ".join("---:" for _ in KINDS) + " | ---: | ---: | ---: |")
    for row in args.rows:
        shape, grader = row.split(":")
        engines, slots = map(int, shape.split("x"))
        found = run_row(root / row.replace(":", "-"), args.problems, engines, slots, grader, args)
        if found["wrong_k_star"] or found["incomplete"]:
            sys.exit(f"{row}: {found['wrong_k_star']} of {found['probed']} K* differ from the scripted "
                     f"outcomes, {found['incomplete']} searches incomplete")
        busy = ", ".join(f"{100 * b:.0f}%" for _, b in sorted(zip(found["roles"], found["busy"]), key=lambda rb: rb[0] != "think"))
        stages = " | ".join(f"{100 * found['stages'][k][0]:.0f}%, {100 * found['stages'][k][1]:.0f}%"
                            if k in found["stages"] else "-" for k in KINDS)
        print(f"| {engines} x {slots} | {grader} | {found['makespan']:.2f}x | {found['ideal_split']:.2f}x / "
              f"{found['ideal_pooled']:.2f}x | {busy} | {stages} | {100 * found['past']:.1f}% | "
              f"{found['loop_ms_per_request']:.2f} / {found['ms_per_request']:.2f} | {found['seconds']:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
