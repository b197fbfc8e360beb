"""The vllm backend's wiring, through a fake ``vllm`` module with the real API's shapes
(``LLM``, ``SamplingParams``, ``TokensPrompt``, ``RequestOutput``). vLLM itself needs a GPU;
see the README for what was run where."""

import sys
import types
from dataclasses import dataclass, field

import pytest

import hinttune.chat
from hinttune.backends import make_backend
from hinttune.backends.base import Request
from hinttune.config import Sampling, VLLMModel
from hinttune.errors import HinttuneError


class FakeTokenizer:
    chat_template = "{% if enable_thinking is defined %}...{% endif %}"
    eos_token = "<|im_end|>"
    name_or_path = "fake"

    def __init__(self):
        self.template_kwargs = []

    def apply_chat_template(self, messages, tokenize, add_generation_prompt, **kwargs):
        assert tokenize is False and add_generation_prompt is True
        self.template_kwargs.append(kwargs)
        think = "<think>\n\n</think>\n\n" if kwargs.get("enable_thinking") is False else ""
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>" + think

    def __call__(self, text, add_special_tokens=True):
        assert add_special_tokens is False  # the template already holds any BOS
        return {"input_ids": [ord(c) for c in text]}

    def get_vocab(self):
        return {"<|im_end|>": 0}


@dataclass
class CompletionOutput:
    text: str
    token_ids: list
    finish_reason: str


@dataclass
class RequestOutput:
    prompt_token_ids: list
    outputs: list


@dataclass
class FakeLLM:
    kwargs: dict
    calls: list = field(default_factory=list)
    fail_next: bool = False
    shut_down: bool = False

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True):
        self.calls.append((prompts, sampling_params, use_tqdm))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("CUDA out of memory")
        outs = []
        for prompt, params in zip(prompts, sampling_params):
            reply = "x" * params.kwargs["max_tokens"]
            cut = params.kwargs["max_tokens"] < 10
            outs.append(RequestOutput(prompt["prompt_token_ids"], [
                CompletionOutput(reply if cut else "ok", [1] * (len(reply) if cut else 2),
                                 "length" if cut else "stop")
                for _ in range(params.kwargs["n"])]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    engines = []

    def LLM(**kwargs):
        llm = FakeLLM(kwargs)
        llm.llm_engine = types.SimpleNamespace(engine_core=types.SimpleNamespace(
            shutdown=lambda: setattr(llm, "shut_down", True)))
        engines.append(llm)
        return llm

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    module.LLM, module.SamplingParams = LLM, SamplingParams
    module.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    monkeypatch.setitem(sys.modules, "vllm", module)
    tokenizer = FakeTokenizer()
    monkeypatch.setattr(hinttune.chat, "load_tokenizer", lambda *a, **k: tokenizer)
    return types.SimpleNamespace(engines=engines, tokenizer=tokenizer)


def backend(**kw):
    return make_backend(VLLMModel(backend="vllm", model="Qwen/Qwen3-4B-Instruct-2507", **kw))


def req(text, max_tokens=100, **kw):
    return Request([{"role": "user", "content": text}], Sampling(max_tokens=max_tokens, top_k=20), **kw)


def test_engine_arguments(fake_vllm):
    b = backend(tensor_parallel_size=4, max_model_len=4096, gpu_memory_utilization=0.8,
                engine_kwargs={"max_num_seqs": 128})
    list(b.generate([req("a")]))
    (engine,) = fake_vllm.engines
    assert engine.kwargs == {"model": "Qwen/Qwen3-4B-Instruct-2507", "tensor_parallel_size": 4,
                             "gpu_memory_utilization": 0.8, "dtype": "auto",
                             "enable_prefix_caching": True, "trust_remote_code": False,
                             "max_model_len": 4096, "max_num_seqs": 128}


def test_prompts_are_token_ids_of_our_rendering_plus_the_continuation(fake_vllm):
    b = backend(max_model_len=1000)
    r = req("what?", continuation="Let me", template_kwargs={"enable_thinking": False}, n=2, seed=9)
    (index, gens), = list(b.generate([r]))
    prompts, params, use_tqdm = fake_vllm.engines[0].calls[0]
    text = "<user>what?<assistant><think>\n\n</think>\n\nLet me"
    assert b.prompt_text(r) == text
    assert prompts == [{"prompt_token_ids": [ord(c) for c in text]}]
    assert fake_vllm.tokenizer.template_kwargs[-1] == {"enable_thinking": False}
    assert params[0].kwargs == {"n": 2, "temperature": 0.7, "top_p": 0.8, "max_tokens": 100,
                                "seed": 9, "top_k": 20}
    assert use_tqdm is False
    assert len(gens) == 2 and gens[0].text == "ok" and gens[0].prompt_tokens == len(text)


def test_max_tokens_is_clamped_to_the_context_and_length_cuts_marked(fake_vllm):
    b = backend(max_model_len=len("<user>abc<assistant>") + 5)
    (_, (gen,)), = list(b.generate([req("abc")]))
    assert fake_vllm.engines[0].calls[0][1][0].kwargs["max_tokens"] == 5
    assert gen.finish_reason == "length" and gen.completion_tokens == 5


def test_chunks_are_yielded_in_turn_and_failures_stay_local(fake_vllm):
    b = backend(chunk_size=2, max_model_len=30)
    requests = [req("a"), req("b"), req("c" * 40), req("d"), req("e")]
    stream = b.generate(requests)
    first = [next(stream), next(stream)]
    assert [i for i, _ in first] == [0, 1] and len(fake_vllm.engines[0].calls) == 1
    fake_vllm.engines[0].fail_next = True
    rest = dict(stream)
    assert rest[2][0].failed and "max_model_len" in rest[2][0].error  # never sent
    assert rest[3][0].failed and "CUDA out of memory" in rest[3][0].error
    assert not rest[4][0].failed
    assert len(fake_vllm.engines[0].calls) == 3


def test_close_shuts_the_engine_down(fake_vllm):
    b = backend()
    list(b.generate([req("a")]))
    b.close()
    assert fake_vllm.engines[0].shut_down and b.llm is None


def test_missing_vllm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    monkeypatch.setattr(hinttune.chat, "load_tokenizer", lambda *a, **k: FakeTokenizer())
    with pytest.raises(HinttuneError, match=r"pip install 'hinttune\[vllm\]'"):
        list(backend().generate([req("a")]))
