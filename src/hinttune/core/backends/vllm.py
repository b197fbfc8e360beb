"""vLLM's engine, fed continuously. We render prompts with the model's chat template
ourselves and hand vLLM token ids (``TokensPrompt``), so the text the model sees is exactly
``prompt_text`` - including a partial assistant turn to continue - with no second BOS.

One thread owns the engine and steps it (``add_request`` / ``step`` / ``abort_request``, the
request-level API ``LLM.generate`` itself uses): ``submit`` hands a request from any thread to
a tokenizer thread, which hands the ids to the engine thread, and returns a future at once; the
engine thread adds what arrived before each step, and resolves each
request's future the moment the step that finished it returns. So the engine never drains to
its slowest sequence before taking more work (vLLM's scheduler batches whatever is in flight;
prefix caching shares a problem's growing prefixes), and whoever waits on a result - probing,
grading, storing - runs while the engine steps (the step waits on the engine core process with
the GIL released).

A request the engine refuses on its own terms (a prompt past the context, parameters the model
rejects: ``ValueError``/``TypeError`` from vLLM's checks) is rejected for good; any other error
while adding it (a mismatched vLLM install, an engine that died) fails it, and the next run
retries it. A step that raises fails what is in flight; an engine that makes no progress for
``engine_timeout`` seconds fails what is in flight and takes no more requests, so a hung engine
never hangs the run.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from itertools import count
from typing import Any

from hinttune.core.backends.base import Generation, Request, TemplatedBackend, failed, rejected, settle
from hinttune.core.chat import encode_prompt, resolve_model_path
from hinttune.core.config import DEFAULT_GPU_MEMORY, VLLMModel
from hinttune.core.errors import HinttuneError, missing_extra

log = logging.getLogger(__name__)


class VLLMBackend(TemplatedBackend):
    name = "vllm"
    cfg: VLLMModel

    def __init__(self, cfg: VLLMModel):
        super().__init__(cfg)
        self.llm: Any = None
        self._ids = count()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._owner: dict[str, Future] = {}  # engine request id -> its future (engine thread only)
        self._thread: threading.Thread | None = None
        self._broken: str | None = None  # why the engine takes no more requests
        self._stepped = time.monotonic()
        self.occupancy: list[int] = []  # requests in the engine, sampled at every step
        self._load_lock = threading.Lock()
        # one thread: the tokenizer's Python wrapper is not safe to call from several at once
        self._to_encode: queue.SimpleQueue = queue.SimpleQueue()
        self._tokenizing: threading.Thread | None = None

    @property
    def slots(self) -> int:  # type: ignore[override]
        seqs = self.cfg.engine_kwargs.get("max_num_seqs")
        return min(self.cfg.max_in_flight, int(seqs)) if seqs else self.cfg.max_in_flight

    def load(self) -> None:
        with self._load_lock:
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
                gpu_memory_utilization=self.cfg.gpu_memory_utilization or DEFAULT_GPU_MEMORY,
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
            self._tokenizing = threading.Thread(target=self._tokenize, daemon=True, name="hinttune-tokenize")
            self._tokenizing.start()
            self._thread = threading.Thread(target=self._serve, daemon=True, name="hinttune-vllm")
            self._thread.start()
            if self.cfg.engine_timeout:
                threading.Thread(target=self._watch, daemon=True, name="hinttune-vllm-watch").start()

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

    def _start(self, request: Request) -> "Future[list[Generation]]":
        self.load()
        future: Future = Future()
        if self._broken:
            future.set_result([failed(self._broken)] * request.n)
            return future
        text = self.prompt_text(request)  # rendered here: the template cache is not thread-safe
        self._to_encode.put((future, request, text))
        future.add_done_callback(lambda f: f.cancelled() and self._inbox.put(("cancel", f, None, None)))
        return future

    def _tokenize(self) -> None:
        while (item := self._to_encode.get()) is not None:
            try:
                self._encode(*item)
            except Exception as exc:  # never leaves the thread: later requests would hang
                settle(item[0], [failed(f"{type(exc).__name__}: {exc}")] * item[1].n)

    def _encode(self, future: Future, request: Request, text: str) -> None:
        """Token ids for the engine, off the caller's thread: a long prefix costs about a
        microsecond per character, and the Rust tokenizer releases the GIL, so the event loop
        goes on reacting to results meanwhile."""
        if future.done():  # abandoned before it was read
            return
        try:
            ids = encode_prompt(self.tokenizer(), text)
        except Exception as exc:  # a tokenizer that cannot read the text fails the request
            settle(future, [failed(f"tokenizing the prompt failed: {type(exc).__name__}: {exc}")] * request.n)
            return
        if self.cfg.max_model_len and len(ids) >= self.cfg.max_model_len:
            settle(future, [rejected(f"prompt has {len(ids)} tokens, max_model_len is "
                                     f"{self.cfg.max_model_len}")] * request.n)
            return
        self._inbox.put(("add", future, request, ids))

    # --- the engine thread ---------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            try:  # wait for work only when the engine has none
                item = self._inbox.get() if not self._owner else self._inbox.get_nowait()
            except queue.Empty:
                item = None
            while item is not None:
                if item[0] == "stop":
                    return
                self._take(*item)
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    item = None
            if self._owner:
                self._step()

    def _take(self, kind: str, future: Future, request: Request | None, ids: list[int] | None) -> None:
        if kind == "cancel":  # abandoned (a kill, a search that no longer needs it)
            rid = next((r for r, f in self._owner.items() if f is future), None)
            if rid is not None:
                del self._owner[rid]
                self._abort(rid)
            return
        if not future.set_running_or_notify_cancel():
            return
        assert request is not None and ids is not None
        rid = f"ht-{next(self._ids)}"  # outputs carry this id (the engine adds a suffix inside)
        prompt: Any = self._vllm.TokensPrompt(prompt_token_ids=ids)
        try:
            if hasattr(self.llm, "_preprocess_cmpl_one"):  # rendered as LLM.generate renders it
                prompt = self.llm._preprocess_cmpl_one(prompt)
            self.engine.add_request(rid, prompt, self._params(request, len(ids)))
        except (ValueError, TypeError) as exc:  # vLLM's own checks: this request can never run
            future.set_result([rejected(f"vLLM refused the request: {type(exc).__name__}: {exc}")] * request.n)
            return
        except Exception as exc:  # anything else may pass next time: retried
            future.set_result([failed(f"vLLM could not take the request: {type(exc).__name__}: {exc}")] * request.n)
            return
        self._owner[rid] = future

    def _step(self) -> None:
        try:
            outputs = self.engine.step()
        except Exception as exc:  # the engine broke: fail everything in it, keep the run going
            log.exception("vLLM engine step failed")
            self._fail_all(f"{type(exc).__name__}: {exc}")
            return
        self._stepped = time.monotonic()
        self.occupancy.append(len(self._owner))
        for out in outputs:
            if not out.finished:
                continue
            future = self._owner.pop(out.request_id, None)
            if future is not None:
                settle(future, [Generation(o.text, "length" if o.finish_reason == "length" else "stop",
                                          len(out.prompt_token_ids or []), len(o.token_ids))
                               for o in out.outputs])

    def _fail_all(self, why: str) -> None:
        for rid, future in list(self._owner.items()):
            self._abort(rid)
            settle(future, [failed(why)])
        self._owner.clear()

    def _abort(self, rid: str) -> None:
        try:
            self.engine.abort_request([rid])
        except Exception:
            pass

    def _watch(self) -> None:
        """An engine that makes no progress for engine_timeout seconds fails what is in it."""
        limit = float(self.cfg.engine_timeout)
        while self.llm is not None and not self._broken:
            time.sleep(min(limit / 4, 5.0))
            if self._owner and time.monotonic() - self._stepped > limit:
                self._broken = f"the vLLM engine made no progress for {limit:g}s"
                log.error("%s: failing its %d requests (retried by the next run)", self._broken,
                          len(self._owner))
                for future in list(self._owner.values()):
                    settle(future, [failed(self._broken)])

    def close(self) -> None:
        if self.llm is None:
            return
        if self._tokenizing is not None:  # what it holds reaches the engine, then fails below
            self._to_encode.put(None)
            self._tokenizing.join()
            self._tokenizing = None
        if self._thread is not None:
            self._inbox.put(("stop", None, None, None))
            self._thread.join(timeout=60)
        self._fail_all("the engine was closed")
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
