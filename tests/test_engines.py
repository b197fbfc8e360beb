"""One model on D engines: problem affinity, results streamed back one by one, a dead engine
failing only its own requests (worker processes on CPU, and Ray where installed)."""

import os
import signal

import pytest

from hinttune.core.backends import make_backend
from hinttune.core.backends.base import Backend, Request
from hinttune.core.backends.engines import Engines, ProcessEngine, _visible_devices
from hinttune.core.config import FakeModel, Sampling, TransformersModel, VLLMModel


def requests(count, **kw):
    return [Request([{"role": "user", "content": f"question {i}"}], Sampling(max_tokens=50), **kw)
            for i in range(count)]


def test_gpu_groups_per_engine(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [_visible_devices(r, 2) for r in range(3)] == ["0,1", "2,3", "4,5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert [_visible_devices(r, 2) for r in range(2)] == ["4,5", "6,7"]


def test_the_cache_key_does_not_depend_on_the_number_of_engines():
    dp = make_backend(VLLMModel(backend="vllm", model="m", data_parallel_size=3))
    assert isinstance(dp, Engines) and len(dp.replicas) == 3
    assert dp.identity() == make_backend(VLLMModel(backend="vllm", model="m")).identity()


class Slots(Backend):
    """A replica with a number of slots and requests that never finish (for routing)."""

    name = "slots"

    def __init__(self, slots):
        super().__init__(FakeModel(backend="fake", model="f"))
        self.slots, self.got = slots, []

    def prompt_text(self, request):
        return ""

    def _start(self, request):
        from concurrent.futures import Future

        self.got.append(request)
        return Future()


def test_a_problem_stays_on_its_engine_and_new_problems_go_to_the_least_loaded():
    engines = Engines(FakeModel(backend="fake", model="f"), [Slots(4), Slots(4)])
    for pid in ("a", "b", "c", "d"):
        engines.submit(requests(1)[0], pid)
    assert [len(r.got) for r in engines.replicas] == [2, 2]  # spread by load
    assert engines.in_flight == 4 and engines.idle() == 4  # what the look-ahead fills
    home = dict(engines.home)
    for _ in range(2):
        for pid in ("a", "b", "c", "d"):
            engines.submit(requests(1)[0], pid)
    assert engines.home == home  # each problem kept its engine while it had room
    assert [len(r.got) for r in engines.replicas] == [6, 6]


def test_a_full_engine_gives_a_problem_up_to_one_with_idle_slots():
    engines = Engines(FakeModel(backend="fake", model="f"), [Slots(2), Slots(8)])
    for _ in range(2):
        engines.submit(requests(1)[0], "a")
    assert engines.home["a"] == 0 or len(engines.replicas[1].got) == 2
    first = engines.home["a"]
    engines.submit(requests(1)[0], "a")  # its engine is full now; the other has room
    assert engines.home["a"] != first or engines.replicas[first].idle()


def test_fake_engines_in_processes_return_every_result_once_and_keep_failures_local():
    cfg = FakeModel(backend="fake", model="f", data_parallel_size=2,
                    answers={f"question {i}": f"answer {i}" for i in range(9)} | {"question 4": "!fail"})
    dp = make_backend(cfg)
    try:
        futures = [dp.submit(r, f"p{i}") for i, r in enumerate(requests(9, n=2))]
        out = [f.result(timeout=60) for f in futures]
        assert [g[0].text for i, g in enumerate(out) if i != 4] == [f"answer {i}" for i in range(9) if i != 4]
        assert out[4][0].failed and len(out[4]) == 2  # a failed request stays local
        assert sorted(dp.sent) == [4, 5]
    finally:
        dp.close()


def test_one_dead_engine_fails_only_its_own_requests():
    cfg = FakeModel(backend="fake", model="f", data_parallel_size=2, delay=0.5)
    dp = make_backend(cfg)
    try:
        warm = [dp.submit(r, f"w{i}") for i, r in enumerate(requests(2))]
        [f.result(timeout=60) for f in warm]  # both engines up
        futures = {f"p{i}": dp.submit(r, f"p{i}") for i, r in enumerate(requests(6))}
        victim: ProcessEngine = dp.replicas[0]
        os.kill(victim.proc.pid, signal.SIGKILL)
        out = {pid: f.result(timeout=60)[0] for pid, f in futures.items()}
        lost = {pid for pid, g in out.items() if g.failed}
        assert lost and all("engine process 0 died" in out[p].error for p in lost)
        assert lost == {pid for pid in futures if dp.home[pid] == 0 or out[pid].failed}
        assert not all(g.failed for g in out.values())  # the other engine went on
        later = dp.submit(requests(1)[0], "new").result(timeout=60)[0]
        assert not later.failed  # new problems go to the engine that is alive
    finally:
        dp.close()


@pytest.mark.slow
def test_two_transformers_engines_match_one(smollm_hf):
    common = dict(backend="transformers", model=str(smollm_hf), device="cpu", batch_size=1)
    reqs = [Request([{"role": "user", "content": f"What is {i} + {i}?"}], Sampling(temperature=0, max_tokens=12))
            for i in range(4)]
    one = make_backend(TransformersModel(**common))
    dp = make_backend(TransformersModel(**common, data_parallel_size=2))
    try:
        expected = [one.submit(r).result()[0].text for r in reqs]
        got = [f.result()[0].text for f in [dp.submit(r, str(i)) for i, r in enumerate(reqs)]]
    finally:
        dp.close()
        one.close()
    assert got == expected


def test_ray_actors_stream_one_request_at_a_time(monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ADDRESS", "local")  # a local Ray instance stands in for a cluster
    cfg = FakeModel(backend="fake", model="f", data_parallel_size=2, data_parallel="ray",
                    answers={f"question {i}": f"answer {i}" for i in range(7)})
    dp = make_backend(cfg)
    try:
        out = [f.result(timeout=120)[0].text for f in [dp.submit(r, f"p{i}") for i, r in enumerate(requests(7))]]
    finally:
        dp.close()
    assert out == [f"answer {i}" for i in range(7)]
    assert sorted(dp.sent) == [3, 4]


@pytest.mark.slow
def test_an_engine_that_cannot_start_stops_the_run_with_why(tmp_path):
    """Not a dead engine whose requests are retried: the same config would fail the same way."""
    pytest.importorskip("vllm", exc_type=ImportError)
    from hinttune.core.errors import HinttuneError

    dp = make_backend(VLLMModel(backend="vllm", model=str(tmp_path / "no-such-model"), data_parallel_size=2))
    try:
        with pytest.raises(HinttuneError, match=r"engine \d: vLLM could not start"):
            dp.submit(requests(1)[0], "p").result(timeout=300)
    finally:
        dp.close()
