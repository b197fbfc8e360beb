"""Generation backends behind one interface (see ``base.Backend``)."""

from __future__ import annotations

from hinttune.backends.base import Backend, Generation, Request
from hinttune.config import ModelBase


def make_backend(cfg: ModelBase) -> Backend:
    backend = getattr(cfg, "backend")
    if backend == "vllm":
        from hinttune.backends.vllm import VLLMBackend as cls
    elif backend == "openai":
        from hinttune.backends.openai import OpenAIBackend as cls
    elif backend == "transformers":
        from hinttune.backends.transformers import TransformersBackend as cls
    elif backend == "fake":
        from hinttune.backends.fake import FakeBackend as cls
    else:  # the config's discriminator makes this unreachable for validated configs
        raise ValueError(f"unknown backend {backend!r}")
    return cls(cfg)


def engine_key(cfg: ModelBase) -> str:
    """Two model configs with the same engine key can share one loaded backend: they differ
    only in what goes into each request (system prompt, template switches, sampling)."""
    per_request = {"system_prompt", "prompt_template", "chat_template_kwargs", "sampling"}
    return cfg.model_dump_json(exclude=per_request)


__all__ = ["Backend", "BackendPool", "Generation", "Request", "make_backend", "engine_key"]


class BackendPool:
    """Keeps one engine loaded at a time and reuses it while consecutive stages use the same
    engine (e.g. the demo's one small model in both roles), so a GPU never holds two."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.backend: Backend | None = None

    def get(self, cfg: ModelBase) -> Backend:
        key = engine_key(cfg)
        if self.backend is None or key != self.key:
            self.close()
            self.backend, self.key = make_backend(cfg), key
        self.backend.cfg = cfg  # per-request settings (system prompt, sampling) of this role
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
        self.backend, self.key = None, None

    def __enter__(self) -> "BackendPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
