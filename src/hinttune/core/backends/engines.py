"""One model on 1..D engines behind the one backend interface, with problem affinity.

``Engines`` routes each request to one of its replicas: a request that names a problem
(``affinity``) goes to the replica that problem's earlier requests went to, so its growing
prefixes share that engine's prefix cache; a new problem goes to the least loaded replica.
A pinned replica that is full while another has idle slots gives the problem up to that one
(a prefix computed twice costs less than a slot left idle). A replica that died takes no new
requests; its own requests fail (retried by the next run) and the run goes on with the others.

Replicas:
- ``data_parallel_size: D`` (vllm, transformers, fake): D worker processes on this node, each
  with its own engine on its GPU group (worker i sees GPUs ``i*T .. i*T+T-1``, T =
  ``tensor_parallel_size``, through ``CUDA_VISIBLE_DEVICES``), requests and results streamed
  one by one over a pipe;
- ``data_parallel: ray``: the same engines as Ray actors across a cluster
  (``ray.init(address="auto")`` joins it; each actor asks Ray for T GPUs), one remote call per
  request;
- ``backend: openai`` with a list of ``base_url``: one client per server.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
from concurrent.futures import Future
from itertools import count
from typing import Any

from hinttune.core.backends.base import Backend, Generation, Request, failed, settle
from hinttune.core.errors import HinttuneError, missing_extra

log = logging.getLogger(__name__)


class Engines(Backend):
    """Replicas of one model config; prompts and identity are the first replica's (the same
    outputs as one engine: the same cache keys)."""

    def __init__(self, cfg: Any, replicas: list[Backend]):
        super().__init__(cfg)
        self.replicas = replicas
        self.name = replicas[0].name
        self.home: dict[str, int] = {}  # problem -> the replica its requests go to
        self.sent = [0] * len(replicas)  # requests each replica was given (for tests, reports)

    def identity(self) -> dict[str, Any]:
        return self.replicas[0].identity()

    def prompt_text(self, request: Request) -> str:
        return self.replicas[0].prompt_text(request)

    @property
    def slots(self) -> int:  # type: ignore[override]
        return sum(r.slots for r in self._alive())

    @property
    def in_flight(self) -> int:  # type: ignore[override]
        return sum(r.in_flight for r in self.replicas)

    def idle(self) -> int:
        return sum(r.idle() for r in self._alive())

    def _alive(self) -> list[Backend]:
        return [r for r in self.replicas if not getattr(r, "dead", None)] or self.replicas[:1]

    def route(self, affinity: str | None) -> int:
        alive = [i for i, r in enumerate(self.replicas) if not getattr(r, "dead", None)] or [0]
        pinned = self.home.get(affinity) if affinity is not None else None
        if pinned in alive and (self.replicas[pinned].idle() or not any(self.replicas[i].idle() for i in alive)):
            return pinned
        best = min(alive, key=lambda i: (self.replicas[i].in_flight / max(1, self.replicas[i].slots), self.sent[i]))
        if affinity is not None:
            self.home[affinity] = best
        return best

    def _pick(self, affinity: str | None) -> Backend:
        index = self.route(affinity)
        self.sent[index] += 1
        return self.replicas[index]

    async def ask(self, request: Request, affinity: str | None = None) -> list[Generation]:
        return await self._pick(affinity).ask(request)

    def submit(self, request: Request, affinity: str | None = None) -> "Future[list[Generation]]":
        return self._pick(affinity).submit(request)

    def take_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for replica in self.replicas:
            for what, n in replica.take_counts().items():
                counts[what] = counts.get(what, 0) + n
        return counts

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()


def single(cfg: Any) -> Any:
    return cfg.model_copy(update={"data_parallel_size": 1})


def _visible_devices(rank: int, per_engine: int) -> str:
    base = os.environ.get("CUDA_VISIBLE_DEVICES")
    pool = base.split(",") if base else [str(i) for i in range(1024)]
    return ",".join(pool[rank * per_engine:(rank + 1) * per_engine])


def _worker(cfg: Any, rank: int, per_engine: int, inbox: Any, outbox: Any) -> None:
    """A worker process: its GPUs, its engine, then requests until told to stop; each result
    goes back the moment it is ready."""
    from hinttune.core.processes import die_with_parent

    die_with_parent()
    if cfg.backend != "fake":
        os.environ["CUDA_VISIBLE_DEVICES"] = _visible_devices(rank, per_engine)
    from hinttune.core.backends import make_backend

    import threading

    backend = make_backend(single(cfg))
    running: dict[int, Future] = {}
    sending = threading.Lock()  # results come from the engine's threads

    def reply(rid: int, future: Future) -> None:
        running.pop(rid, None)
        if future.cancelled():
            return
        error = future.exception()
        with sending:
            outbox.send((rid, future.result() if error is None else f"{type(error).__name__}: {error}"))

    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):
            break
        if message is None:
            break
        kind, rid, request = message
        if kind == "cancel":
            if rid in running:
                running[rid].cancel()
            continue
        try:
            future = running[rid] = backend.submit(request)
        except HinttuneError as exc:  # the engine cannot start here: the run stops with why
            with sending:
                outbox.send((rid, ("fatal", str(exc))))
            continue
        future.add_done_callback(lambda f, rid=rid: reply(rid, f))
    backend.close()


class RemoteEngine(Backend):
    """An engine elsewhere (a worker process, a Ray actor): prompts, identity and slots are
    those of a local backend of the same config, which never loads an engine."""

    def __init__(self, cfg: Any, rank: int):
        super().__init__(cfg)
        from hinttune.core.backends import make_backend

        self.local = make_backend(single(cfg))
        self.name, self.rank = self.local.name, rank
        self.dead: str | None = None
        self.lock = threading.Lock()

    @property
    def slots(self) -> int:  # type: ignore[override]
        return self.local.slots

    def identity(self) -> dict[str, Any]:
        return self.local.identity()

    def prompt_text(self, request: Request) -> str:
        return self.local.prompt_text(request)


class ProcessEngine(RemoteEngine):
    """One engine in a worker process of its own."""

    def __init__(self, cfg: Any, rank: int):
        super().__init__(cfg, rank)
        self.proc: Any = None
        self.waiting: dict[int, Future] = {}
        self.ids = count()
        self.outgoing: queue.SimpleQueue = queue.SimpleQueue()  # to the worker, in order

    def _launch(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        self.pipe, child = ctx.Pipe()
        # not a daemon: vLLM starts its engine core in a process of its own, which a daemonic
        # process may not do; the worker dies with us all the same (die_with_parent)
        self.proc = ctx.Process(target=_worker, daemon=False, name=f"hinttune-engine-{self.rank}",
                                args=(self.cfg, self.rank, getattr(self.cfg, "tensor_parallel_size", 1),
                                      child, child))
        self.proc.start()
        child.close()
        threading.Thread(target=self._read, daemon=True, name=f"hinttune-engine-{self.rank}-results").start()
        self.sender = threading.Thread(target=self._send, daemon=True, name=f"hinttune-engine-{self.rank}-requests")
        self.sender.start()

    def _send(self) -> None:
        """Requests and cancels to the worker in the order they were made, off the caller's
        thread: pickling a request, and writing it to a pipe the busy worker has not read yet,
        would hold up the event loop (on 4 engines it was a third of the loop's time)."""
        while True:
            message = self.outgoing.get()
            try:
                self.pipe.send(message)
            except (OSError, ValueError) as exc:  # the worker is gone: what it held fails in _read
                if message is not None and message[0] == "add":
                    future = self.waiting.pop(message[1], None)
                    if future is not None:
                        # the same cause as the requests _read fails, so a report groups them
                        settle(future, [failed(f"engine process {self.rank} died ({type(exc).__name__} "
                                               f"sending a request: {exc})")] * message[2].n)
            if message is None:
                return

    def _read(self) -> None:
        """Results as they come back; if the process dies, its requests fail (retried)."""
        proc = self.proc
        while True:
            try:
                rid, payload = self.pipe.recv()
            except (EOFError, OSError):
                break
            future = self.waiting.pop(rid, None)
            if future is None:
                continue
            if isinstance(payload, tuple):  # ("fatal", why): a problem with the engine, not the request
                future.set_exception(HinttuneError(f"engine {self.rank}: {payload[1]}"))
            else:
                settle(future, payload if isinstance(payload, list) else [failed(payload)])
        proc.join(5)
        self.dead = f"engine process {self.rank} died (exit code {proc.exitcode}; see its log above)"
        if self.waiting:
            log.error("%s: failing its %d requests in flight (retried by the next run)", self.dead,
                      len(self.waiting))
        for future in list(self.waiting.values()):
            settle(future, [failed(self.dead)])
        self.waiting.clear()

    def _start(self, request: Request) -> "Future[list[Generation]]":
        future: Future = Future()
        with self.lock:
            if self.proc is None:
                self._launch()
            if self.dead:
                future.set_result([failed(self.dead)] * request.n)
                return future
            rid = next(self.ids)
            self.waiting[rid] = future
            self.outgoing.put(("add", rid, request))
        future.add_done_callback(lambda f: f.cancelled() and self._cancel(rid))
        return future

    def _cancel(self, rid: int) -> None:
        self.waiting.pop(rid, None)
        if not self.dead:
            self.outgoing.put(("cancel", rid, None))

    def close(self) -> None:
        if self.proc is None:
            return
        self.outgoing.put(None)  # after what was sent before it
        self.sender.join(timeout=60)
        self.proc.join(timeout=60)
        if self.proc.is_alive():
            self.proc.kill()
        self.proc = None


class RayEngine(RemoteEngine):
    """One engine in a Ray actor; each request is one remote call, so results come back one
    by one (a kill loses only what was in flight)."""

    def __init__(self, cfg: Any, rank: int):
        super().__init__(cfg, rank)
        self.actor: Any = None

    def _launch(self) -> None:
        try:
            import ray
        except ImportError:
            raise missing_extra("ray", "ray") from None
        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), ignore_reinit_error=True)
        gpus = getattr(self.cfg, "tensor_parallel_size", 1) if self.cfg.backend == "vllm" else 0

        class Engine:
            def __init__(self, cfg: Any):
                from hinttune.core.backends import make_backend

                self.backend = make_backend(cfg)

            def generate(self, request: Request) -> list[Generation]:
                return self.backend.submit(request).result()

        self._ray = ray
        # a threaded actor: its slots' worth of requests wait on the engine at once
        self.actor = ray.remote(num_gpus=gpus, max_concurrency=max(1, self.slots))(Engine).remote(single(self.cfg))

    def _start(self, request: Request) -> "Future[list[Generation]]":
        with self.lock:
            if self.actor is None:
                self._launch()
        future: Future = Future()
        ref = self.actor.generate.remote(request)

        def done(remote: Future) -> None:
            try:
                settle(future, remote.result())
            except Exception as exc:  # the actor died or raised: its requests fail, retried
                self.dead = f"Ray engine {self.rank} failed: {type(exc).__name__}: {exc}"
                settle(future, [failed(self.dead)] * request.n)

        ref.future().add_done_callback(done)
        future.add_done_callback(lambda f: f.cancelled() and self._ray.cancel(ref))
        return future

    def close(self) -> None:
        if self.actor is not None:
            self._ray.kill(self.actor)
            self.actor = None


def make_engines(cfg: Any) -> Engines:
    """The replicas a config asks for (``data_parallel_size`` > 1, or several base_url)."""
    if getattr(cfg, "backend", None) == "openai":
        from hinttune.core.backends.openai import OpenAIBackend

        return Engines(cfg, [OpenAIBackend(cfg.model_copy(update={"base_url": url})) for url in cfg.base_url])
    kind = RayEngine if getattr(cfg, "data_parallel", "processes") == "ray" else ProcessEngine
    return Engines(cfg, [kind(cfg, rank) for rank in range(cfg.data_parallel_size)])
