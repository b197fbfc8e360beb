"""Generation backends behind one interface (see ``base.Backend``)."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

from hinttune.core.backends.base import Backend, Generation, Request
from hinttune.core.config import PER_REQUEST, ModelBase


def make_backend(cfg: ModelBase) -> Backend:
    several_servers = isinstance(getattr(cfg, "base_url", None), list) and len(getattr(cfg, "base_url")) > 1
    if getattr(cfg, "data_parallel_size", 1) > 1 or several_servers:
        from hinttune.core.backends.engines import make_engines

        return make_engines(cfg)
    backend = getattr(cfg, "backend")
    if backend == "vllm":
        from hinttune.core.backends.vllm import VLLMBackend as cls
    elif backend == "openai":
        from hinttune.core.backends.openai import OpenAIBackend as cls
    elif backend == "transformers":
        from hinttune.core.backends.transformers import TransformersBackend as cls
    elif backend == "fake":
        from hinttune.core.backends.fake import FakeBackend as cls
    elif backend == "traces":
        from hinttune.core.backends.traces import TracesBackend as cls
    else:  # the config's discriminator makes this unreachable for validated configs
        raise ValueError(f"unknown backend {backend!r}")
    return cls(cfg)


def engine_key(cfg: ModelBase) -> str:
    """Two model configs with the same engine key can share one loaded backend: they differ
    only in what goes into each request (system prompt, template switches, sampling)."""
    return cfg.model_dump_json(exclude=set(PER_REQUEST))


class Frozen:
    """A backend that renders prompts (so cached results are found) but runs nothing: each
    request fails with ``why``, which makes its item incomplete and says what to do."""

    def __init__(self, inner: Backend, why: str):
        self.__dict__.update(inner=inner, why=why)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self.inner, name, value)

    async def ask(self, request: Request, affinity: str | None = None) -> list[Generation]:
        return self.submit(request).result()

    def submit(self, request: Request, affinity: str | None = None) -> "Future[list[Generation]]":
        from hinttune.core.backends.base import failed

        future: Future = Future()
        future.set_result([failed(self.why)] * request.n)
        return future

    def generate(self, requests: list[Request]):  # type: ignore[no-untyped-def]
        for index, request in enumerate(requests):
            yield index, self.submit(request).result()

    def close(self) -> None:
        self.inner.close()


__all__ = ["Backend", "BackendPool", "Generation", "Model", "Request", "make_backend", "engine_key"]


@dataclass(frozen=True)
class Model:
    """A model as a stage uses it: its role's settings (prompt, sampling) and the engine that
    runs it (one engine serves every role whose model is the same, ``engine_key``)."""
    cfg: ModelBase
    backend: Backend


class BackendPool:
    """Loaded backends, one per engine, all resident until the pool closes: a construction
    keeps its think and instruct models busy at once (each vLLM engine with its share of GPU
    memory, ``VLLMModel.gpu_memory_utilization``), and roles that use the same engine share
    it (the demo's one small model in both roles, the paper's instruct model as its own
    judge)."""

    def __init__(self, frozen: str | None = None) -> None:
        self.backends: dict[str, Backend] = {}
        self.frozen = frozen  # why nothing may be generated (a merge): every request fails so


    def get(self, cfg: ModelBase) -> Backend:
        key = engine_key(cfg)
        if key not in self.backends:
            self.backends[key] = make_backend(cfg) if self.frozen is None else Frozen(make_backend(cfg), self.frozen)
        backend = self.backends[key]
        backend.cfg = cfg  # per-request settings (system prompt, sampling) of this role
        return backend

    def model(self, cfg: ModelBase) -> Model:
        return Model(cfg, self.get(cfg))

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
        self.backends.clear()

    def __enter__(self) -> "BackendPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
