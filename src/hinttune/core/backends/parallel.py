"""Data parallelism for local engines: one engine per GPU group, each in its own process,
requests sharded across them, results merged by request index as they complete.

``backend: vllm`` (or ``transformers``) with ``data_parallel_size: D`` starts D worker
processes; worker i sees GPUs ``i*T .. i*T+T-1`` (T = tensor_parallel_size) through
``CUDA_VISIBLE_DEVICES`` and loads its own engine there, once, for the whole run. Requests are
dealt round-robin, so long and short prompts spread evenly. Across nodes, ``data_parallel:
ray`` places the same engines as Ray actors (``ray.init(address="auto")`` joins the running
cluster; each actor asks Ray for T GPUs).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
from typing import Any, Iterator

from hinttune.core.backends.base import Backend, Generation, Request, failed
from hinttune.core.errors import HinttuneError, missing_extra

log = logging.getLogger(__name__)


def _single(cfg: Any) -> Any:
    return cfg.model_copy(update={"data_parallel_size": 1})


def _visible_devices(rank: int, per_engine: int) -> str:
    base = os.environ.get("CUDA_VISIBLE_DEVICES")
    pool = base.split(",") if base else [str(i) for i in range(1024)]
    return ",".join(pool[rank * per_engine:(rank + 1) * per_engine])


def _worker(cfg: Any, rank: int, per_engine: int, inbox: Any, outbox: Any) -> None:
    """A worker process: its GPUs, its engine, then shards until told to stop."""
    from hinttune.core.processes import die_with_parent

    die_with_parent()
    if cfg.backend != "fake":
        os.environ["CUDA_VISIBLE_DEVICES"] = _visible_devices(rank, per_engine)
    from hinttune.core.backends import make_backend

    backend = make_backend(_single(cfg))
    while True:
        job = inbox.get()
        if job is None:
            break
        indices, requests = job
        try:
            for local, gens in backend.generate(requests):
                outbox.put((rank, indices[local], gens))
        except Exception as exc:  # the shard fails, the run goes on
            outbox.put((rank, None, f"{type(exc).__name__}: {exc}"))
        outbox.put((rank, None, None))
    backend.close()


class DataParallel(Backend):
    """Wraps D engines of one model config behind the one backend interface."""

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        from hinttune.core.backends import make_backend

        self.local = make_backend(_single(cfg))  # prompts and identity; never loads an engine
        self.name = self.local.name
        self.size = cfg.data_parallel_size
        self.per_engine = getattr(cfg, "tensor_parallel_size", 1)
        self.workers: list[Any] = []

    def identity(self) -> dict[str, Any]:
        return self.local.identity()  # the same outputs as one engine: same cache keys

    def prompt_text(self, request: Request) -> str:
        self.local.cfg = _single(self.cfg)
        return self.local.prompt_text(request)

    def _start(self) -> None:
        if self.workers:
            return
        ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        self.outbox = ctx.Queue()
        for rank in range(self.size):
            inbox = ctx.Queue()
            proc = ctx.Process(target=_worker, args=(self.cfg, rank, self.per_engine, inbox, self.outbox),
                               daemon=True, name=f"hinttune-engine-{rank}")
            proc.start()
            self.workers.append((proc, inbox))
        log.info("started %d engines for %s", self.size, self.cfg.model)

    def shards(self, n: int) -> list[list[int]]:
        return [list(range(rank, n, self.size)) for rank in range(self.size)]

    def generate(self, requests: list[Request]) -> Iterator[tuple[int, list[Generation]]]:
        if not requests:
            return
        self._start()
        pending = set()
        for rank, indices in enumerate(self.shards(len(requests))):
            if indices:
                self.workers[rank][1].put((indices, [requests[i] for i in indices]))
                pending.add(rank)
        left = {i for i in range(len(requests))}
        while pending:
            try:
                rank, index, payload = self.outbox.get(timeout=5)
            except queue.Empty:
                dead = [r for r in pending if not self.workers[r][0].is_alive()]
                if dead:
                    raise HinttuneError(f"engine process {dead[0]} died (see its log above)") from None
                continue
            if index is not None:
                left.discard(index)
                yield index, payload
            elif payload is not None:  # the shard raised: fail what it still owed
                log.error("engine %d failed: %s", rank, payload)
                for i in sorted(left & set(self.shards(len(requests))[rank])):
                    left.discard(i)
                    yield i, [failed(payload)] * requests[i].n
            else:
                pending.discard(rank)

    def close(self) -> None:
        for proc, inbox in self.workers:
            inbox.put(None)
        for proc, _ in self.workers:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
        self.workers = []


class RayDataParallel(DataParallel):
    """The same sharding over Ray actors, for engines on several nodes."""

    def _start(self) -> None:
        if self.workers:
            return
        try:
            import ray
        except ImportError:
            raise missing_extra("ray", "ray") from None
        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), ignore_reinit_error=True)
        gpus = self.per_engine if self.cfg.backend == "vllm" else 0

        @ray.remote(num_gpus=gpus)
        class Engine:
            def __init__(self, cfg: Any):
                from hinttune.core.backends import make_backend

                self.backend = make_backend(cfg)

            def generate(self, indices: list[int], requests: list[Request]) -> list[tuple[int, Any]]:
                return [(indices[i], gens) for i, gens in self.backend.generate(requests)]

        self._ray = ray
        self.workers = [Engine.remote(_single(self.cfg)) for _ in range(self.size)]

    def generate(self, requests: list[Request]) -> Iterator[tuple[int, list[Generation]]]:
        if not requests:
            return
        self._start()
        calls = {}
        for rank, indices in enumerate(self.shards(len(requests))):
            if indices:
                ref = self.workers[rank].generate.remote(indices, [requests[i] for i in indices])
                calls[ref] = indices
        while calls:
            done, _ = self._ray.wait(list(calls), num_returns=1)
            indices = calls.pop(done[0])
            try:
                results = self._ray.get(done[0])
            except Exception as exc:  # an actor failed: its shard is recorded as failed
                results = [(i, [failed(f"{type(exc).__name__}: {exc}")] * requests[i].n) for i in indices]
            yield from results

    def close(self) -> None:
        for actor in self.workers:
            self._ray.kill(actor)
        self.workers = []
