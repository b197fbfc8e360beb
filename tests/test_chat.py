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
