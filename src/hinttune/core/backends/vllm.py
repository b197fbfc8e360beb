"""vLLM's engine, fed continuously. We render prompts with the model's chat template
ourselves and hand vLLM token ids (``TokensPrompt``), so the text the model sees is exactly
``prompt_text`` - including a partial assistant turn to continue - with no second BOS.

Requests go to the engine one by one through its request-level API (``add_request`` /
``step``), up to ``max_in_flight`` at a time: each output is returned - and so stored - the
moment its request finishes, and a freed slot is refilled at once, so the engine never drains
to its slowest sequence before taking more work (vLLM's own scheduler batches whatever is in
flight; prefix caching shares common prompt prefixes). Requests may keep arriving while
others run (``generate`` takes a ``Feed``), which is what continuous probing uses; and calls
may nest - a judge call on the same engine in the middle of a probe stream - because every
call steps the one engine and outputs are routed to the call that asked for them.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from itertools import count
from typing import Any, Iterable, Iterator

from hinttune.core.backends.base import WAIT, Generation, Request, TemplatedBackend, failed, rejected
from hinttune.core.backends.feed import Feed, as_feed
from hinttune.core.chat import encode_prompt, resolve_model_path
from hinttune.core.config import VLLMModel
from hinttune.core.errors import HinttuneError, missing_extra

log = logging.getLogger(__name__)


class VLLMBackend(TemplatedBackend):
    name = "vllm"
    cfg: VLLMModel
    streams = True  # takes new requests while others run

    def __init__(self, cfg: VLLMModel):
        super().__init__(cfg)
        self.llm: Any = None
        self._ids = count()
        self._owner: dict[str, tuple[int, int]] = {}  # engine request id -> (call, index)
        self._done: dict[int, deque] = {}  # call -> finished (index, generations) not yet taken
        self.in_flight = 0
        self.occupancy: list[int] = []  # requests in the engine, sampled at every step

    def load(self) -> None:
        if self.llm is not None:
            return
        try:
            import vllm
        except ImportError:
            raise missing_extra("vllm", "vllm") from None
        self._vllm = vllm
        args: dict[str, Any] = dict(
            model=resolve_model_path(self.cfg.model),
            tensor_parallel_size=self.cfg.tensor_parallel_size,
            gpu_memory_utilization=self.cfg.gpu_memory_utilization,
            dtype=self.cfg.dtype,
            enable_prefix_caching=self.cfg.enable_prefix_caching,
            trust_remote_code=self.cfg.trust_remote_code,
        )
        if self.cfg.tokenizer:
            args["tokenizer"] = resolve_model_path(self.cfg.tokenizer)
        if self.cfg.max_model_len:
            args["max_model_len"] = self.cfg.max_model_len
        args.update(self.cfg.engine_kwargs)
        started = time.time()
        try:
            self.llm = vllm.LLM(**args)
        except Exception as exc:
            raise HinttuneError(f"vLLM could not start {self.cfg.model!r}: "
                                f"{type(exc).__name__}: {exc}") from None
        self.engine = self.llm.llm_engine
        log.info("vLLM engine for %s ready in %.1fs", self.cfg.model, time.time() - started)

    def _params(self, request: Request, prompt_len: int) -> Any:
        from vllm.sampling_params import RequestOutputKind

        s = request.sampling
        max_tokens = s.max_tokens
        if self.cfg.max_model_len:  # vLLM rejects prompt + max_tokens beyond the context
            max_tokens = min(max_tokens, self.cfg.max_model_len - prompt_len)
        kwargs: dict[str, Any] = dict(n=request.n, temperature=s.temperature, top_p=s.top_p,
                                      max_tokens=max_tokens, seed=request.seed,
                                      output_kind=RequestOutputKind.FINAL_ONLY)
        if s.top_k and s.top_k > 0:
            kwargs["top_k"] = s.top_k
        if s.stop:
            kwargs["stop"] = list(s.stop)
        return self._vllm.SamplingParams(**kwargs)

    def _submit(self, call: int, index: int, request: Request) -> Generation | None:
        """Add one request to the engine; a generation instead if it cannot go in."""
        ids = encode_prompt(self.tokenizer(), self.prompt_text(request))
        if self.cfg.max_model_len and len(ids) >= self.cfg.max_model_len:
            return rejected(f"prompt has {len(ids)} tokens, max_model_len is {self.cfg.max_model_len}")
        rid = f"ht-{next(self._ids)}"  # outputs carry this id (the engine adds a suffix inside)
        prompt: Any = self._vllm.TokensPrompt(prompt_token_ids=ids)
        try:
            if hasattr(self.llm, "_preprocess_cmpl_one"):  # rendered as LLM.generate renders it
                prompt = self.llm._preprocess_cmpl_one(prompt)
            self.engine.add_request(rid, prompt, self._params(request, len(ids)))
        except Exception as exc:  # invalid parameters for this request: it alone fails
            return rejected(f"vLLM refused the request: {type(exc).__name__}: {exc}")
        self._owner[rid] = (call, index)
        self.in_flight += 1
        return None

    def _step(self) -> None:
        """One engine step; finished outputs go to the call that asked for them."""
        try:
            outputs = self.engine.step()
        except Exception as exc:  # the engine broke: fail everything in it, keep the run going
            log.exception("vLLM engine step failed")
            for rid, (call, index) in list(self._owner.items()):
                self._done.setdefault(call, deque()).append(
                    (index, [failed(f"{type(exc).__name__}: {exc}")]))
                self._abort(rid)
            return
        self.occupancy.append(self.in_flight)
        for out in outputs:
            if not out.finished:
                continue
            owner = self._owner.pop(out.request_id, None)
            if owner is None:
                continue
            self.in_flight -= 1
            call, index = owner
            gens = [Generation(o.text, "length" if o.finish_reason == "length" else "stop",
                               len(out.prompt_token_ids or []), len(o.token_ids))
                    for o in out.outputs]
            self._done.setdefault(call, deque()).append((index, gens))

    def _abort(self, rid: str) -> None:
        if self._owner.pop(rid, None) is not None:
            self.in_flight -= 1
        try:
            self.engine.abort_request([rid])
        except Exception:
            pass

    def stream(self, feed: Feed) -> Iterator[tuple[int, list[Generation]] | None]:
        return self._run(feed, waits=True)

    def generate(self, requests: Iterable[Request] | Feed) -> Iterator[tuple[int, list[Generation]]]:
        return self._run(as_feed(requests), waits=False)  # type: ignore[return-value]

    def _run(self, feed: Feed, waits: bool) -> Iterator[tuple[int, list[Generation]] | None]:
        if feed.empty and feed.closed:
            return
        self.load()
        call = next(self._ids)
        done = self._done.setdefault(call, deque())
        mine = 0  # this call's requests in the engine
        try:
            while True:
                room = max(0, self.cfg.max_in_flight - self.in_flight)
                handed = bool(done)
                for index, request in feed.take(room):
                    refused = self._submit(call, index, request)
                    if refused is not None:
                        handed = True
                        yield index, [refused] * request.n
                    else:
                        mine += 1
                while done:
                    mine -= 1
                    yield done.popleft()
                if handed and waits:  # the caller may put requests in: take them before stepping
                    yield WAIT
                    continue
                if mine == 0 and feed.empty:
                    if feed.closed:
                        return
                    raise RuntimeError("a stream with nothing in flight waits for requests "
                                       "that can never come: close its feed")
                if (mine or not feed.empty) and self.in_flight:
                    # ours are running, or ours wait for a slot that other calls hold: stepping
                    # frees slots either way (their outputs are kept for their callers)
                    self._step()
        finally:  # abandoned early (an error, a kill): nothing of ours stays in the engine
            for rid in [r for r, (c, _) in self._owner.items() if c == call]:
                self._abort(rid)
            self._done.pop(call, None)

    def close(self) -> None:
        if self.llm is None:
            return
        engine_core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            engine_core.shutdown()  # V1 runs the model in a separate process: stop it
        self.llm = self.engine = None
        try:  # release GPU memory so the next model of the run can load
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
