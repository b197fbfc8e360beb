"""The one narrow interface every generation backend implements: ``await backend.ask(request,
affinity)`` returns the request's ``n`` generations (text, finish reason, token counts) the
moment it finishes, with any number of other requests in flight. Everything that generates
(``generations.AsyncJobs``: attempts, probes, judge calls, evaluation samples) goes through it.

How a backend answers it depends on its transport:
- an HTTP server (openai): a coroutine on the caller's event loop, nothing else;
- an engine stepped by its own thread (vllm), a worker process or a Ray actor per engine
  (``engines.py``), or a thread that runs batches (transformers, fake, traces: they implement
  ``generate`` on a list): ``submit`` starts the request and returns a thread-safe
  ``concurrent.futures.Future`` at once, and ``ask`` awaits it.

A failure is a generation with ``finish_reason='error'`` (retried by the next run) or
``'rejected'`` (the request itself can never run), never an exception; an exception is a
problem with the whole backend (a missing package, a server that cannot be reached) and stops
the run. Cancelling ``ask`` takes the request out of the engine.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from abc import ABC, abstractmethod
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Iterator

from hinttune.core.config import ModelBase, Sampling

log = logging.getLogger(__name__)


@dataclass
class Request:
    messages: list[dict[str, str]]
    sampling: Sampling
    continuation: str | None = None  # a partial assistant turn to continue verbatim
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    n: int = 1
    seed: int | None = None
    sample: int = 0  # which sample of this prompt it is (imported traces: the sample-th trace)
    # the text rendered for it, by which tokenizer: keys are computed before generation, and
    # rendering a chat template twice for every long hint prompt is wasted work
    rendered: tuple[int, str] | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        # sent to an engine process, whose tokenizer renders it again: no need to carry the text
        return {**self.__dict__, "rendered": None}


@dataclass
class Generation:
    text: str
    finish_reason: str  # "stop", "length" (cut by max_tokens), "error", or "rejected" (for good)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.finish_reason in ("error", "rejected")


def failed(error: str, raw: str = "") -> Generation:
    """A generation that failed this time (retried by the next run)."""
    return Generation(text=raw, finish_reason="error", error=error)


def settle(future: Future, generations: list[Generation]) -> None:
    """Resolve a request's future unless something else did first (a watchdog, a cancel)."""
    try:
        future.set_result(generations)
    except InvalidStateError:
        pass


def rejected(error: str, raw: str = "") -> Generation:
    """A request the backend refuses for good (e.g. a prompt longer than the context):
    recorded with its reason and not sent again by later runs."""
    return Generation(text=raw, finish_reason="rejected", error=error)


class Backend(ABC):
    """Subclasses import their heavy libraries in ``load`` only."""

    name: str = "base"
    # called with the tokens generated so far by requests not yet returned (for live progress
    # of backends that return whole batches at once); None when nobody listens
    token_hook: Any = None

    def __init__(self, cfg: ModelBase):
        self.cfg = cfg

    def identity(self) -> dict[str, Any]:
        """What, besides the prompt and sampling, decides the output (part of the cache key):
        for a local folder, also a fingerprint of its weights (see ``fingerprint.py``)."""
        found = {"backend": self.name, "model": self.cfg.model, "gguf_file": self.cfg.gguf_file}
        if not hasattr(self, "_weights"):  # once per backend: keys are computed per request
            from hinttune.core.fingerprint import weights_fingerprint

            self._weights = weights_fingerprint(self.cfg.model, self.cfg.gguf_file)
        if self._weights is not None:
            found["weights"] = self._weights
        return found

    @abstractmethod
    def prompt_text(self, request: Request) -> str:
        """The exact text the model is conditioned on (cheap: no engine needed)."""

    # requests it runs at once: idle slots are what probing's look-ahead fills
    slots: int = 1

    def generate(self, requests: list[Request]) -> Iterator[tuple[int, list[Generation]]]:
        """Yield ``(index into requests, generations)`` as each completes. Batch backends
        implement this (``submit`` runs it on a thread); streaming ones get it from ``submit``."""
        from concurrent.futures import as_completed

        futures = {self.submit(request): index for index, request in enumerate(requests)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:  # abandoned early: nothing of ours stays in the engine
            for future in futures:
                future.cancel()

    def batch_size(self) -> int:
        """How many queued requests one ``generate`` call takes (batch backends)."""
        return 1

    async def ask(self, request: Request, affinity: str | None = None) -> list[Generation]:
        """The request's generations, awaited. ``affinity`` names the problem it belongs to
        (``engines.Engines`` keeps a problem's requests on one engine; a single engine has
        nothing to choose). Backends with a thread or process of their own answer through
        ``submit``; those that speak asyncio themselves override this."""
        return await asyncio.wrap_future(self.submit(request, affinity))

    def submit(self, request: Request, affinity: str | None = None) -> "Future[list[Generation]]":
        """Start ``request``; its future holds the generations. Thread-safe, never blocks (for
        callers outside an event loop: a worker process, a Ray actor, tests)."""
        future = self._start(request)
        with self._count_lock:
            self._in_flight += 1
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _: Future) -> None:
        with self._count_lock:
            self._in_flight -= 1

    _in_flight = 0
    _count_lock = threading.Lock()  # shared by all backends: held for one addition

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def idle(self) -> int:
        """Slots with nothing in them (what asking ahead may fill)."""
        return max(0, self.slots - self._in_flight)

    def _start(self, request: Request) -> "Future[list[Generation]]":
        """Streaming backends override this; the default queues the request for a thread that
        runs what is queued in batches of ``batch_size`` through ``generate``."""
        future: Future = Future()
        with self._count_lock:
            if getattr(self, "_queued", None) is None:
                self._queued: queue.SimpleQueue = queue.SimpleQueue()
                threading.Thread(target=self._run_batches, daemon=True, name=f"hinttune-{self.name}").start()
        self._queued.put((request, future))
        return future

    def _run_batches(self) -> None:
        while True:
            batch = [self._queued.get()]
            while len(batch) < self.batch_size():
                try:
                    batch.append(self._queued.get_nowait())
                except queue.Empty:
                    break
            live = [(r, f) for r, f in batch if f.set_running_or_notify_cancel()]
            try:
                for index, gens in self.generate([r for r, _ in live]):
                    live[index][1].set_result(gens)
                for request, future in live:  # a request it never answered fails (retried)
                    settle(future, [failed("the backend returned no result for this request")] * request.n)
            except BaseException as exc:  # the backend itself broke: whoever waits is told
                log.debug("batch failed", exc_info=True)
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)

    def take_counts(self) -> dict[str, int]:
        """Events since the last call that no record shows (e.g. retries by cause)."""
        return {}

    def close(self) -> None:
        """Free the engine (GPU memory, connections)."""


def sampling_dict(sampling: Sampling) -> dict[str, Any]:
    return sampling.model_dump(mode="json")


class TemplatedBackend(Backend):
    """A backend that renders prompts with the model's tokenizer (transformers, vLLM, and the
    openai backend's completions mode)."""

    def tokenizer(self) -> Any:
        from hinttune.core.chat import load_tokenizer

        if self.cfg.tokenizer:
            return load_tokenizer(self.cfg.tokenizer, None, getattr(self.cfg, "trust_remote_code", False))
        return load_tokenizer(self.cfg.model, self.cfg.gguf_file,
                              getattr(self.cfg, "trust_remote_code", False))

    def prompt_text(self, request: Request) -> str:
        from hinttune.core.chat import render_prompt

        tokenizer = self.tokenizer()
        if request.rendered is None or request.rendered[0] != id(tokenizer):
            request.rendered = (id(tokenizer), render_prompt(tokenizer, request.messages,
                                                         request.continuation, request.template_kwargs))
        return request.rendered[1]
