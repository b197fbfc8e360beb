"""The one narrow interface every generation backend implements.

A batch of requests goes in; for each request, ``n`` generations come out (text, finish
reason, token counts), yielded as soon as that request is complete so the caller can store
it before the next one finishes. A failure is a generation with ``finish_reason='error'``
and its message, never an exception that stops the batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator

from hinttune.core.config import ModelBase, Sampling

WAIT = None  # yielded by a stream that is about to wait for the engine (see feed.py)


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

    @abstractmethod
    def generate(self, requests: list[Request]) -> Iterator[tuple[int, list[Generation]]]:
        """Yield ``(index into requests, generations)`` as each request completes."""

    # True for backends that take new requests while others run (vllm, openai)
    streams = False

    def stream(self, feed: Any) -> Iterator[tuple[int, list[Generation]]]:
        """Generate from a ``Feed`` that may grow while results come back; yield ``(index in
        the feed, generations)``, and ``WAIT`` when what was ready has been handed out (see
        ``feed.py``). Streaming backends override this; the default sends what is queued as one
        batch, then the next (a barrier per batch), and yields ``WAIT`` after every result: it
        cannot tell whether the next one is ready."""
        while True:
            batch = feed.take()
            if not batch:
                if feed.closed:
                    return
                raise RuntimeError("a stream with nothing in flight waits for requests that "
                                   "can never come: close its feed")
            for i, gens in self.generate([request for _, request in batch]):
                yield batch[i][0], gens
                yield WAIT

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
