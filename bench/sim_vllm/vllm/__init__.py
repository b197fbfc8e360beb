"""A stand-in for the part of vLLM's Python API that hinttune's ``vllm`` backend uses
(``LLM``, ``llm_engine.add_request / step / abort_request``, ``TokensPrompt``,
``SamplingParams``), for bench/construction.py: an engine of S sequence slots that generates
``tokens_per_step`` tokens per running sequence per step, with scripted outcomes. Requests
beyond S wait, as in vLLM.

Time is virtual and shared: every engine of the process (the think model's and the instruct
model's, and each data-parallel replica) steps on one clock, one step per tick, all of them
in the same tick (``Clock``); an engine with nothing to do lets its tick pass idle. A GPU step
takes tens of milliseconds, in which the caller reacts to what finished (grades it, asks the
next k); a simulated step takes microseconds. So after a tick that finished requests, the
clock waits until the caller's process (``$SIM_VLLM_DRIVER``) has gone idle - it has done
everything those results led to - before the next tick, and an engine whose caller still
holds requests for it (asked, not added yet) lets them in before it steps: a request asked in
reaction to tick t starts at tick t + 1.
Busy shares in ticks then measure the scheduling, not how fast Python runs on the bench
machine (the bench reports that separately).

Prompts are character-level token ids (the bench's tokenizer maps a character to its code
point), so the engine reads the prompt text back: the problem (``Problem N``), k (how many
``Step`` episodes the prefix holds), and whether it is a judge call (``## Attempt``). The
engine's model name says whose it is (``think`` in it: the think model). Outcomes come from
bench/construction.py. Each engine writes what it did per tick, and each request it finished
(what kind, when added, admitted, finished, how long), to ``$SIM_VLLM_STATS/<pid>-<id>.json``
when it is shut down.
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
from construction import outcome  # noqa: E402  (bench/construction.py: the scripted outcomes)

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
    kind: str
    done: float = 0.0
    added: int = 0
    admitted: int = 0


def _caller_idle(quiet=()):
    """Until hinttune has done what the finished requests led to: every ``quiet`` check holds
    (the bench's: nothing waits on the event loop, in a tokenizer queue or at Math-Verify) and
    hinttune ran under 0.2 ms in 10 ms; 10 s at most. hinttune is every thread of this process
    but the engines' own while they wait for the clock (they sleep in it). /proc's schedstat
    counts a thread's run time in nanoseconds (stat's ticks are too coarse for this)."""
    import threading

    if not os.environ.get("SIM_VLLM_DRIVER"):
        return
    me = str(threading.get_native_id())
    folder = Path(f"/proc/{os.getpid()}/task")

    def ran():
        total = 0
        for task in folder.iterdir():
            if task.name == me:
                continue
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError):  # a thread that ended
                pass
        return total

    deadline = time.monotonic() + 10.0
    last = ran()
    while time.monotonic() < deadline:
        time.sleep(0.01)
        now = ran()
        if now - last < 200_000 and all(check() for check in quiet):
            return
        last = now


class Clock:
    """One tick at a time for every engine of the process: an engine that has stepped in this
    tick waits until each engine with work has too; the tick after one that finished requests
    starts once the caller is idle."""

    def __init__(self):
        import threading

        self.cond = threading.Condition()
        self.tick = 0
        self.engines = []
        self.stepped = set()
        # the first tick, and the tick after one that finished requests, wait for the caller
        self.finished = True
        self.opening = False
        # engine -> whether its caller holds requests for it not added yet (set by the bench)
        self.undelivered = {}
        self.quiet = []  # checks that hinttune has nothing left to do (set by the bench)

    def _others_done(self):
        return all(id(e) in self.stepped or not e.has_work() for e in self.engines)

    def begin(self, engine):
        """Wait for this engine's turn; returns the tick it steps in."""
        with self.cond:
            while id(engine) in self.stepped or self.opening:
                if not self.opening and self._others_done():
                    self.tick += 1
                    self.stepped.clear()
                    if self.finished:
                        self.opening, self.finished = True, False
                        self.cond.release()
                        try:
                            _caller_idle(self.quiet)
                        finally:
                            self.cond.acquire()
                            self.opening = False
                    self.cond.notify_all()
                    continue
                self.cond.wait(0.01)
            self.stepped.add(id(engine))
            return self.tick

    def handed_all(self, engine):
        """After the caller went idle: has it added everything it asked of this engine? If
        not, the engine leaves its turn in this tick to the caller's thread, which adds them
        and steps again - so a request asked in reaction to tick t starts at tick t + 1,
        however fast or slow the caller was."""
        pending = self.undelivered.get(id(engine))
        if pending is None or not pending():
            return True
        with self.cond:
            self.stepped.discard(id(engine))
        return False

    def end(self, finished):
        with self.cond:
            self.finished = self.finished or finished
            self.cond.notify_all()


CLOCK = Clock()


class _Engine:
    def __init__(self, model):
        env = os.environ
        self.role = "think" if "think" in model else "instruct"
        self.slots = int(env.get(f"SIM_VLLM_SLOTS_{self.role.upper()}", env.get("SIM_VLLM_SLOTS", "256")))
        self.per_step = int(env.get("SIM_VLLM_TOKENS_PER_STEP", "64"))
        self.waiting: deque[_Seq] = deque()
        self.running: dict[str, _Seq] = {}
        self.steps: list[tuple] = []  # tick, {kind: busy slots}, tokens
        self.engine_core = self
        self.finished: list[tuple] = []  # kind, added, admitted, finished (ticks), tokens
        self.ticks = 0  # this engine's steps
        CLOCK.engines.append(self)

    def has_work(self):
        return bool(self.waiting or self.running)

    @_counted
    def add_request(self, rid, prompt, params):
        ids = prompt["prompt_token_ids"]
        text = "".join(map(chr, ids))
        kind, length, reply = outcome(text, getattr(params, "seed", None), self.role)
        length = max(1, min(length, params.max_tokens))
        self.waiting.append(_Seq(rid, ids, reply, length, kind, added=CLOCK.tick))

    def abort_request(self, rids):
        for rid in rids:
            self.running.pop(rid, None)
        self.waiting = deque(s for s in self.waiting if s.rid not in rids)

    @_counted
    def step(self):
        tick = CLOCK.begin(self)
        if not CLOCK.handed_all(self):
            return []
        while self.waiting and len(self.running) < self.slots:
            seq = self.waiting.popleft()
            seq.admitted = tick
            self.running[seq.rid] = seq
        busy, tokens, finished = {}, 0, []
        for seq in list(self.running.values()):
            made = min(self.per_step, seq.length - seq.done)
            seq.done += made
            busy[seq.kind] = busy.get(seq.kind, 0.0) + made / self.per_step
            tokens += made
            if seq.done >= seq.length:
                del self.running[seq.rid]
                finished.append(seq)
                self.finished.append((seq.kind, seq.added, seq.admitted, tick, seq.length))
        self.steps.append((tick, busy, tokens))
        CLOCK.end(bool(finished))
        return [SimpleNamespace(request_id=s.rid, finished=True, prompt_token_ids=s.prompt_ids,
                                outputs=[SimpleNamespace(text=s.text, finish_reason="stop",
                                                         token_ids=range(int(s.length)))])
                for s in finished]

    def shutdown(self):
        folder = os.environ.get("SIM_VLLM_STATS")
        if folder:
            Path(folder, f"{os.getpid()}-{id(self)}.json").write_text(json.dumps(
                {"role": self.role, "slots": self.slots, "per_step": self.per_step, "steps": self.steps,
                 "finished": self.finished}))


class LLM:
    def __init__(self, **kwargs):
        self.llm_engine = _Engine(str(kwargs.get("model", "")))
