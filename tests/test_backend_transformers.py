"""The transformers backend on the real small model (SmolLM2-135M-Instruct, CPU)."""

import pytest

from hinttune.core.backends import make_backend
from hinttune.core.backends.base import Request
from hinttune.core.config import Sampling, TransformersModel

pytestmark = pytest.mark.slow
COUNT = [{"role": "user", "content": "Count from 1 to 10."}]


@pytest.fixture(scope="module")
def model(smollm_hf):
    # the demo's weights as a checkpoint: loads in a second (the GGUF file takes ~25 s to
    # de-quantize; the demo's own test loads that)
    backend = make_backend(TransformersModel(backend="transformers", model=str(smollm_hf),
                                             device="cpu", batch_size=4))
    backend.load()
    yield backend
    backend.close()


def greedy(max_tokens, **kw):
    return Request(COUNT, Sampling(temperature=0, max_tokens=max_tokens), **kw)


def test_continues_a_partial_turn_and_stops_at_end_of_turn(model):
    (_, (gen,)), = list(model.generate([greedy(60, continuation="1, 2, 3, 4,")]))
    assert gen.text.startswith(" 5, 6"), gen.text
    assert gen.finish_reason == "stop" and gen.completion_tokens < 60
    assert "<|im_end|>" not in gen.text
    assert model.prompt_text(greedy(1, continuation="1, 2,")).endswith("<|im_start|>assistant\n1, 2,")


def test_batch_with_length_cuts_samples_and_token_counts(model):
    requests = [greedy(3), greedy(40, continuation="1,"),
                Request(COUNT, Sampling(temperature=0.8, top_p=0.95, max_tokens=8), n=2, seed=1)]
    out = dict(model.generate(requests))
    assert sorted(out) == [0, 1, 2]
    cut = out[0][0]
    assert cut.finish_reason == "length" and cut.completion_tokens == 3
    tok = model.tokenizer()
    assert cut.prompt_tokens == len(tok(model.prompt_text(requests[0]), add_special_tokens=False)["input_ids"])
    assert len(out[2]) == 2 and all(g.completion_tokens <= 8 for g in out[2])


def test_greedy_is_reproducible(model):
    a = dict(model.generate([greedy(12)]))[0][0].text
    b = dict(model.generate([greedy(12), greedy(5, continuation="1")]))[0][0].text
    assert a == b


def test_a_prompt_longer_than_the_context_is_rejected_at_once(model):
    """A 1 MB problem must not run for minutes: it is rejected for good, with the reason,
    and the other requests of the batch go on."""
    huge = Request([{"role": "user", "content": "word " * 20_000}], Sampling(temperature=0, max_tokens=4))
    out = dict(model.generate([huge, greedy(3)]))
    assert out[0][0].finish_reason == "rejected" and out[0][0].failed
    assert "the model's context is 8192" in out[0][0].error
    assert out[1][0].finish_reason == "length" and out[1][0].completion_tokens == 3


@pytest.mark.parametrize("cores, load, threads", [(2, 0.3, 2), (2, 3.7, 1), (16, 4.2, 12), (8, 0.0, 8), (1, 9.0, 1)])
def test_cpu_threads_are_the_cores_not_already_busy(monkeypatch, cores, load, threads):
    import os

    from hinttune.core.backends.transformers import cpu_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert cpu_threads() == threads
