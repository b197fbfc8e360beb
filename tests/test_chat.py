"""Prompts as the model sees them: the template rendered once per conversation, and token ids
exactly those of the tokenizer's own call."""

import pytest

from hinttune.core.chat import encode_prompt, render_prompt

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = ["The answer is 7. Wait, let me check: 3 + 4 = 7.", "<|user|> what is 3 + 4?"] * 50
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]", "<|user|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<|user|>")
    fast.chat_template = TEMPLATE
    return fast


def test_the_template_is_rendered_once_per_conversation_and_the_continuation_appended(tokenizer):
    messages = [{"role": "user", "content": "what is 3 + 4?"}]
    calls = []
    real = tokenizer.apply_chat_template

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    tokenizer.apply_chat_template = counting
    try:
        first = render_prompt(tokenizer, messages, "<think>\nStep 1.")
        second = render_prompt(tokenizer, messages, "<think>\nStep 1. Step 2.")
        other = render_prompt(tokenizer, [{"role": "user", "content": "what is 5 + 6?"}], "")
    finally:
        del tokenizer.apply_chat_template
    expected = real(messages, tokenize=False, add_generation_prompt=True)
    assert first == expected + "<think>\nStep 1."
    assert second == expected + "<think>\nStep 1. Step 2."
    assert "5 + 6" in other and len(calls) == 2  # the second prompt of a conversation: no render
    messages[0]["content"] = "changed"  # a key by content, not by the list's identity
    assert "changed" in render_prompt(tokenizer, messages)


@pytest.mark.parametrize("text", ["<|user|>\nwhat is 3 + 4?\n<|assistant|>\n<think>\nWait,  so\n\n",
                                  "ünï ₩ 12+30=32  ", "  leading spaces", ""])
def test_prompt_ids_are_the_tokenizers_own(tokenizer, text):
    assert encode_prompt(tokenizer, text) == list(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_a_folder_of_gguf_weights_only_asks_for_gguf_file(tmp_path):
    from hinttune.core.chat import load_tokenizer
    from hinttune.core.errors import HinttuneError

    (tmp_path / "tiny.Q4_1.gguf").write_bytes(b"GGUF")
    with pytest.raises(HinttuneError, match=r"GGUF weights only \(tiny.Q4_1.gguf\): set the model.s gguf_file"):
        load_tokenizer(str(tmp_path))


@pytest.mark.slow
def test_a_gguf_tokenizer_is_kept_as_files_and_reads_back_the_same(smollm_dir, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    import hinttune.core.chat as chat

    monkeypatch.setenv("HINTTUNE_CACHE", str(tmp_path))
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    reference = AutoTokenizer.from_pretrained(str(smollm_dir), gguf_file=gguf)
    chat._load_tokenizer.cache_clear()
    first = chat.load_tokenizer(str(smollm_dir), gguf)
    assert chat.load_tokenizer(str(smollm_dir), gguf, False) is first  # one entry, however spelled
    assert list((tmp_path / "gguf-tokenizers").iterdir())
    chat._load_tokenizer.cache_clear()
    again = chat.load_tokenizer(str(smollm_dir), gguf)  # from the kept files
    messages = [{"role": "user", "content": "What is 2+2? <|im_end|> ü"}]
    for tok in (first, again):
        assert tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
            reference.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        for text in ("Hello <|im_start|> wörld\n\n  x", "<think>\nStep 1. Wait, "):
            assert tok(text)["input_ids"] == reference(text)["input_ids"]
            assert encode_prompt(tok, text) == reference(text, add_special_tokens=False)["input_ids"]
        assert (tok.eos_token, tok.pad_token, tok.bos_token) == (reference.eos_token, reference.pad_token,
                                                                 reference.bos_token)
    chat._load_tokenizer.cache_clear()
