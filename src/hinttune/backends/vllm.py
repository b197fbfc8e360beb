"""vLLM's offline engine (``vllm.LLM``). We render prompts with the model's chat template
ourselves and hand vLLM token ids (``TokensPrompt``), so the text the model sees is exactly
``prompt_text`` - including a partial assistant turn to continue - with no second BOS.

Requests go to the engine in chunks of ``chunk_size``; vLLM schedules each chunk as one
continuous batch (prefix caching shares common prompt prefixes), and each finished chunk is
returned - and so stored - before the next starts.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator

from hinttune.backends.base import Generation, Request, TemplatedBackend, failed, rejected
from hinttune.chat import encode_prompt, resolve_model_path
from hinttune.config import VLLMModel
from hinttune.errors import HinttuneError, missing_extra

log = logging.getLogger(__name__)


class VLLMBackend(TemplatedBackend):
    name = "vllm"
    cfg: VLLMModel

    def __init__(self, cfg: VLLMModel):
        super().__init__(cfg)
        self.llm: Any = None

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
        log.info("vLLM engine for %s ready in %.1fs", self.cfg.model, time.time() - started)

    def _params(self, request: Request, prompt_len: int) -> Any:
        s = request.sampling
        max_tokens = s.max_tokens
        if self.cfg.max_model_len:  # vLLM rejects prompt + max_tokens beyond the context
            max_tokens = min(max_tokens, self.cfg.max_model_len - prompt_len)
        kwargs: dict[str, Any] = dict(n=request.n, temperature=s.temperature, top_p=s.top_p,
                                      max_tokens=max_tokens, seed=request.seed)
        if s.top_k and s.top_k > 0:
            kwargs["top_k"] = s.top_k
        if s.stop:
            kwargs["stop"] = list(s.stop)
        return self._vllm.SamplingParams(**kwargs)

    def generate(self, requests: list[Request]) -> Iterator[tuple[int, list[Generation]]]:
        if not requests:
            return
        self.load()
        tok = self.tokenizer()
        size = self.cfg.chunk_size
        for start in range(0, len(requests), size):
            chunk = list(enumerate(requests[start:start + size], start))
            prompts, params, sent = [], [], []
            for index, request in chunk:
                ids = encode_prompt(tok, self.prompt_text(request))
                if self.cfg.max_model_len and len(ids) >= self.cfg.max_model_len:
                    yield index, [rejected(f"prompt has {len(ids)} tokens, max_model_len is "
                                         f"{self.cfg.max_model_len}")] * request.n
                    continue
                prompts.append(self._vllm.TokensPrompt(prompt_token_ids=ids))
                params.append(self._params(request, len(ids)))
                sent.append(index)
            if not sent:
                continue
            try:
                outputs = self.llm.generate(prompts, params, use_tqdm=False)
            except Exception as exc:  # keep the run going; the chunk is recorded as failed
                log.exception("vLLM generate failed")
                for index in sent:
                    yield index, [failed(f"{type(exc).__name__}: {exc}")] * requests[index].n
                continue
            for index, out in zip(sent, outputs):
                yield index, [Generation(o.text, "length" if o.finish_reason == "length" else
                                         "stop", len(out.prompt_token_ids or []), len(o.token_ids))
                              for o in out.outputs]

    def close(self) -> None:
        if self.llm is None:
            return
        engine_core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            engine_core.shutdown()  # V1 runs the model in a separate process: stop it
        self.llm = None
        try:  # release GPU memory so the next model of the run can load
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
