"""How a record becomes the tokens a model trains on, whatever its chat template does.

Rendering a whole conversation with the chat template is not safe for reasoning targets:
DeepSeek-R1-Distill's template keeps only ``content.split('</think>')[-1]`` of an assistant turn
(the reasoning never reaches the loss), and Qwen3-Thinking-2507's opens ``<think>`` in the
generation prompt (a target that also opens it would be trained with the tag twice). So the
prompt is rendered exactly as at inference — the template with its generation prompt — and the
target is appended as text, less the opening tag the prompt already holds, followed by what the
template writes after an assistant turn (its end-of-turn). Prompt and completion are tokenized
apart, so the loss covers the completion's tokens and nothing else, and the model is trained
on the very tokens it is prompted with at inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hinttune.core.errors import HinttuneError

THINK_OPEN = "<think>"
_QUESTION = "hinttune template probe: what is 2 + 2?"
_REASONING = "hinttune probe reasoning 7e1f"
_ANSWER = "hinttune probe answer 7e1f"


@dataclass(frozen=True)
class ChatFormat:
    model: str
    opener: str  # the end of the generation prompt that opens the reasoning ("<think>\n"), or ""
    end_of_turn: str  # what the template writes after an assistant turn's content
    rewrites_reasoning: bool  # whether the template drops or changes an assistant turn's reasoning

    def describe(self) -> str:
        said = [f"the prompt is the template's generation prompt{' (it opens ' + self.opener.strip() + ')' if self.opener else ''}",
                f"the target follows verbatim, then {self.end_of_turn!r}"]
        if self.rewrites_reasoning:
            said.append("the template itself drops or changes an assistant turn's reasoning, so it is not used "
                        "to render the target")
        return "; ".join(said)


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def chat_format(tokenizer: Any, model: str) -> ChatFormat:
    """What the model's template does, learnt by rendering a probe conversation; a template
    that cannot be made to carry a target verbatim is one error naming the model and why."""
    user = [{"role": "user", "content": _QUESTION}]
    try:
        prompt = _render(tokenizer, user, True)
        bare = _render(tokenizer, user, False)
        plain = _render(tokenizer, user + [{"role": "assistant", "content": _ANSWER}], False)
        reasoned = _render(tokenizer, user + [{"role": "assistant", "content":
                                               f"{THINK_OPEN}\n{_REASONING}\n</think>\n\n{_ANSWER}"}], False)
    except Exception as exc:  # a template's own error (jinja raise_exception, a missing variable)
        raise HinttuneError(f"{model}: its chat template cannot render a user and an assistant turn: "
                            f"{type(exc).__name__}: {exc}") from None
    if _QUESTION not in prompt:
        raise HinttuneError(f"{model}: its chat template drops the user turn")
    if len(prompt) <= len(bare) or not prompt.startswith(bare):
        raise HinttuneError(f"{model}: its chat template writes no generation prompt (add_generation_prompt "
                            "changes nothing), so where the answer starts is unknown: pass a template that has one")
    if _ANSWER not in plain:
        raise HinttuneError(f"{model}: its chat template drops an assistant turn's content")
    end_of_turn = plain[plain.rindex(_ANSWER) + len(_ANSWER):]
    if not end_of_turn.strip():
        raise HinttuneError(f"{model}: its chat template writes nothing after an assistant turn, so a trained "
                            "model would never learn to stop")
    tail = prompt[len(bare):]
    opens = tail.rfind(THINK_OPEN)
    opener = tail[opens:] if opens >= 0 and not tail[opens + len(THINK_OPEN):].strip() else ""
    kept = f"{_REASONING}\n</think>\n\n{_ANSWER}" in reasoned and THINK_OPEN in reasoned
    return ChatFormat(model, opener, end_of_turn, rewrites_reasoning=not kept)


def completion_text(fmt: ChatFormat, target: str, where: str) -> str:
    """The text appended to the generation prompt: the target, less the ``<think>`` the prompt
    already opens (never doubled, never missing), then the end of turn."""
    if not fmt.opener:
        return target + fmt.end_of_turn
    if not target.startswith(THINK_OPEN):
        raise HinttuneError(f"{where}: the chat template of {fmt.model} opens {THINK_OPEN} in its generation "
                            f"prompt, but the target does not start with {THINK_OPEN}: it would be trained "
                            "inside an unclosed reasoning block")
    rest = target[len(THINK_OPEN):]
    gap = fmt.opener[len(THINK_OPEN):]  # the whitespace the prompt puts after the tag ("\n")
    if gap and rest.startswith(gap):
        rest = rest[len(gap):]
    return rest + fmt.end_of_turn


def tokenize_sample(tokenizer: Any, fmt: ChatFormat, prompt: list[dict[str, str]], target: str,
                    where: str) -> dict[str, list[int]]:
    """``input_ids`` and ``completion_mask`` (1 on the completion's tokens) for one record."""
    prompt_ids = tokenizer(_render(tokenizer, prompt, True), add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion_text(fmt, target, where), add_special_tokens=False)["input_ids"]
    return {"input_ids": prompt_ids + completion_ids,
            "completion_mask": [0] * len(prompt_ids) + [1] * len(completion_ids)}
