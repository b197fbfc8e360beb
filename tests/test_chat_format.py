"""The target reaches the loss verbatim under every chat template: the tokens under the loss,
decoded, are each state's target (less the ``<think>`` the prompt opens) and the end of turn."""

import pytest

from hinttune.core.errors import HinttuneError
from hinttune.training.chat_format import chat_format, completion_text, tokenize_sample
from templates import TEMPLATES

pytest.importorskip("transformers")

TARGETS = {
    "No-Hint": "<think>\nOK,\n</think>\n\nThe answer is $\\boxed{4}$.",
    "Sparse-Hint": "<think>\nFirst, 56 + 1: add the units.\n</think>\n\nThen 56 + 1 = 57. The answer is $\\boxed{57}$.",
    "Full-Hint": "<think>\nLet me see. 7 x 8 = 56.\n\nWait, check: 8 x 7 = 56. Yes.\n</think>\n\n$\\boxed{56}$",
}
PROMPT = [{"role": "user", "content": "What is 56 + 1?"}]


@pytest.fixture(scope="module")
def tokenizer(smollm_hf):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm_hf)


@pytest.fixture
def with_template(tokenizer):
    original = tokenizer.chat_template

    def use(name):
        tokenizer.chat_template = TEMPLATES[name]
        return tokenizer

    yield use
    tokenizer.chat_template = original


@pytest.mark.parametrize("state", list(TARGETS))
@pytest.mark.parametrize("template", list(TEMPLATES))
def test_the_target_is_under_the_loss_verbatim(with_template, template, state):
    tok = with_template(template)
    fmt = chat_format(tok, template)
    sample = tokenize_sample(tok, fmt, PROMPT, TARGETS[state], "record 0")
    ids, mask = sample["input_ids"], sample["completion_mask"]
    trained = tok.decode([i for i, m in zip(ids, mask) if m])
    prompt = tok.decode([i for i, m in zip(ids, mask) if not m])
    assert prompt == tok.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    assert "56 + 1?" in prompt and "boxed" not in prompt
    # the reasoning opened by the prompt (if it opens it) and the completion are the target, whole
    assert prompt.endswith(fmt.opener) and fmt.opener + trained == TARGETS[state] + fmt.end_of_turn
    assert trained.count("<think>") == (0 if fmt.opener else 1) and trained.count("</think>") == 1
    assert mask == sorted(mask)  # one prompt, then one completion


def test_what_each_template_does(with_template):
    found = {name: chat_format(with_template(name), name) for name in TEMPLATES}
    assert {n: f.opener for n, f in found.items()} == {
        "chatml": "", "qwen3-thinking-2507": "<think>\n", "deepseek-r1-distill": "<think>\n",
        "deepseek-r1-distill-first-release": ""}
    assert {n: f.end_of_turn for n, f in found.items()} == {
        "chatml": "<|im_end|>\n", "qwen3-thinking-2507": "<|im_end|>\n",
        "deepseek-r1-distill": "<｜end▁of▁sentence｜>", "deepseek-r1-distill-first-release": "<｜end▁of▁sentence｜>"}
    assert [n for n, f in found.items() if f.rewrites_reasoning] == ["deepseek-r1-distill",
                                                                      "deepseek-r1-distill-first-release"]


def test_rendering_the_whole_conversation_would_drop_the_hint(with_template):
    """Why the target is never rendered by the template: DeepSeek-R1-Distill's keeps only what
    follows </think>, which is what TRL's conversational path trained on."""
    tok = with_template("deepseek-r1-distill")
    whole = tok.apply_chat_template(PROMPT + [{"role": "assistant", "content": TARGETS["Sparse-Hint"]}],
                                    tokenize=False)
    assert "add the units" not in whole and "<think>" not in whole


def test_templates_that_cannot_carry_a_target_are_named(with_template):
    tok = with_template("chatml")
    tok.chat_template = TEMPLATES["chatml"].replace("{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                                                    "{% endif %}", "")
    with pytest.raises(HinttuneError, match="my/model: .*no generation prompt"):
        chat_format(tok, "my/model")
    tok.chat_template = ("{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endif %}{% endfor %}"
                         "{% if add_generation_prompt %}A:{% endif %}")
    with pytest.raises(HinttuneError, match="drops an assistant turn's content"):
        chat_format(tok, "my/model")
    tok.chat_template = "{{ raise_exception('only system and user') }}"
    with pytest.raises(HinttuneError, match="cannot render"):
        chat_format(tok, "my/model")


def test_a_target_without_think_under_a_template_that_opens_it_is_named(with_template):
    fmt = chat_format(with_template("qwen3-thinking-2507"), "Qwen/Qwen3-4B-Thinking-2507")
    with pytest.raises(HinttuneError, match=r"data.json: record p7: .*does not start with <think>"):
        completion_text(fmt, "The answer is 4.", "data.json: record p7")
    assert completion_text(fmt, "<think>x</think>\n\n4", "r") == "x</think>\n\n4<|im_end|>\n"
