"""Chat templates of the shapes the paper's models ship (neither ships in a PyPI package, so
these are written to behave the same way on what matters to training):

- ChatML: what SmolLM2 (the demo model) and Qwen2.5 instruct models use;
- Qwen3-Thinking-2507: the generation prompt opens ``<think>\\n``; an assistant turn's reasoning
  is parsed out of its content and rendered back in a ``<think>`` block;
- DeepSeek-R1-Distill: an assistant turn keeps only ``content.split('</think>')[-1]``; the
  generation prompt opens ``<think>\\n`` (the tokenizer as updated after release) or not (as first
  released).
"""

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

QWEN3_THINKING = (
    "{%- for message in messages %}"
    "{%- if message.role == 'user' %}{{ '<|im_start|>user\n' + message.content + '<|im_end|>\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- set content = message.content %}{%- set reasoning = '' %}"
    "{%- if '</think>' in content %}"
    "{%- set reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\n') %}"
    "{%- endif %}"
    "{%- if loop.last %}"
    "{{ '<|im_start|>assistant\n<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}"
    "{%- else %}{{ '<|im_start|>assistant\n' + content }}{%- endif %}"
    "{{ '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{%- endif %}")


def deepseek_r1_distill(opens_think: bool = True) -> str:
    return ("{{ '<｜begin▁of▁sentence｜>' }}{%- for message in messages %}"
            "{%- if message.role == 'user' %}{{ '<｜User｜>' + message.content }}"
            "{%- elif message.role == 'assistant' %}{%- set content = message.content %}"
            "{%- if '</think>' in content %}{%- set content = content.split('</think>')[-1] %}{%- endif %}"
            "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}"
            "{%- endif %}{%- endfor %}"
            "{%- if add_generation_prompt %}{{ '<｜Assistant｜>" + ("<think>\\n" if opens_think else "")
            + "' }}{%- endif %}")


TEMPLATES = {"chatml": CHATML, "qwen3-thinking-2507": QWEN3_THINKING,
             "deepseek-r1-distill": deepseek_r1_distill(True),
             "deepseek-r1-distill-first-release": deepseek_r1_distill(False)}
