"""A stand-in for the part of vLLM's Python API that hinttune's ``vllm`` backend uses
(``LLM``, ``llm_engine.add_request / step / abort_request``, ``TokensPrompt``,
``SamplingParams``), for bench/engines.py: an engine of S sequence slots that generates
``tokens_per_step`` tokens per running sequence per step, with scripted outcomes. Requests
beyond S wait, as in vLLM.

Time is virtual: a step is one unit. A GPU step takes tens of milliseconds, in which the
caller reacts to what finished (grades it, asks the next k); a simulated step takes
microseconds. So after a step that finished requests, the engine waits until the caller's
process (``$SIM_VLLM_DRIVER``) has gone idle - it has done everything those results led to -
before it steps again: the busy share in steps then measures the scheduling, not how fast
Python runs on the bench machine (the bench reports that separately).

Prompts are character-level token ids (the bench's tokenizer maps a character to its code
point), so the engine reads the prompt text back: the problem (``Problem N``), k (how many
``Step`` episodes the prefix holds), and whether it is a judge call (``## Attempt``). Outcomes
come from bench/engines.py's difficulty model, rebuilt from the environment in every process
(data-parallel engines run in worker processes). Each engine writes what it did per step, and
when each request it finished was added and how long it was, to
``$SIM_VLLM_STATS/<pid>.json`` when it is shut down.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from engines import outcome  # noqa: E402  (bench/engines.py: the scripted outcomes)

__version__ = "0.0-sim"


def _counted(method):
    """The simulated engine's own CPU time (its steps, its waits for the driver, reading a
    prompt back), which the bench subtracts from hinttune's."""
    import functools
    import threading

    @functools.wraps(method)
    def counted(*args, **kwargs):
        cpu = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            thread = threading.current_thread()
            thread.sim_cpu = getattr(thread, "sim_cpu", 0.0) + time.thread_time() - cpu
    return counted


def sim_cpu() -> float:
    """CPU time the simulated engines of this process spent (their threads' counted work)."""
    import threading

    return sum(getattr(t, "sim_cpu", 0.0) for t in threading.enumerate())


@dataclass
class TokensPrompt(dict):
    prompt_token_ids: list = field(default_factory=list)

    def __post_init__(self):
        self["prompt_token_ids"] = self.prompt_token_ids


class SamplingParams(SimpleNamespace):
    pass


@dataclass
class _Seq:
    rid: str
    prompt_ids: list
    text: str
    length: int
    done: float = 0.0
    added: float = 0.0


class _Engine:
    def __init__(self):
        env = os.environ
        self.slots = int(env.get("SIM_VLLM_SLOTS", "256"))
        self.per_step = int(env.get("SIM_VLLM_TOKENS_PER_STEP", "64"))
        self.finished_last = False
        self.waiting: deque[_Seq] = deque()
        self.running: dict[str, _Seq] = {}
        self.steps: list[tuple] = []  # start, end, busy slots, tokens, process CPU, simulation CPU
        self.engine_core = self
        self.finished: list[tuple[float, int]] = []  # (when added, tokens) of each finished request

    @_counted
    def add_request(self, rid, prompt, params):
        ids = prompt["prompt_token_ids"]
        text = "".join(map(chr, ids))
        length, reply = outcome(text, getattr(params, "seed", None))
        length = max(1, min(length, params.max_tokens))
        self.waiting.append(_Seq(rid, ids, reply, length, added=time.monotonic()))

    def abort_request(self, rids):
        for rid in rids:
            self.running.pop(rid, None)
        self.waiting = deque(s for s in self.waiting if s.rid not in rids)

    def _wait_for_the_caller(self):
        """Until hinttune ran under 0.2 ms in 10 ms, 2 s at most: it has done what the finished
        requests led to. hinttune is every thread of the driver ($SIM_VLLM_DRIVER: its event
        loop, the threads reading engine results) and the other threads of this process (a
        data-parallel worker's thread that takes requests off the pipe). /proc's schedstat
        counts a thread's run time in nanoseconds (stat's ticks are too coarse for this)."""
        import threading

        driver = os.environ.get("SIM_VLLM_DRIVER")
        if not driver:
            return
        me = str(threading.get_native_id())
        folders = [Path(f"/proc/{driver}/task")]
        if str(os.getpid()) != driver:
            folders.append(Path(f"/proc/{os.getpid()}/task"))

        def ran():
            total = 0
            for folder in folders:
                for task in folder.iterdir():
                    if task.name == me:
                        continue
                    try:
                        total += int((task / "schedstat").read_text().split()[0])
                    except (OSError, ValueError):  # a thread that ended
                        pass
            return total

        deadline = time.monotonic() + 2.0
        last = ran()
        while time.monotonic() < deadline:
            time.sleep(0.01)
            now = ran()
            if now - last < 200_000:
                return
            last = now

    @_counted
    def step(self):
        if self.finished_last:
            self._wait_for_the_caller()
        started = time.monotonic()
        while self.waiting and len(self.running) < self.slots:
            seq = self.waiting.popleft()
            self.running[seq.rid] = seq
        busy, tokens, finished = 0.0, 0, []
        for seq in list(self.running.values()):
            made = min(self.per_step, seq.length - seq.done)
            seq.done += made
            busy += made / self.per_step
            tokens += made
            if seq.done >= seq.length:
                del self.running[seq.rid]
                finished.append(seq)
                self.finished.append((seq.added, seq.length))
        self.finished_last = bool(finished)
        # the process's CPU time and the simulated engines' share of it, for the bench to
        # count a data-parallel worker's own work (what hinttune does in it) over the stage
        self.steps.append((started, time.monotonic(), busy, tokens, time.process_time(), sim_cpu()))
        return [SimpleNamespace(request_id=s.rid, finished=True, prompt_token_ids=s.prompt_ids,
                                outputs=[SimpleNamespace(text=s.text, finish_reason="stop",
                                                         token_ids=range(int(s.length)))])
                for s in finished]

    def shutdown(self):
        folder = os.environ.get("SIM_VLLM_STATS")
        if folder:
            Path(folder, f"{os.getpid()}-{id(self)}.json").write_text(json.dumps(
                {"pid": os.getpid(), "slots": self.slots, "per_step": self.per_step, "steps": self.steps,
                 "finished": self.finished}))


class LLM:
    def __init__(self, **kwargs):
        self.llm_engine = _Engine()
