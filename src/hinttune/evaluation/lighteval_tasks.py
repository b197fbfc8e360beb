"""Custom tasks for lighteval users: AIME24, AIME25, HMMT25 (February), MATH-500, AMC23 and
GSM8K with the paper's prompt, avg@n and pass@1 with Math-Verify, and reasoning / output token
metrics. They score like ``hinttune eval``: the gold answer is handed to lighteval as
``\\boxed{gold}``, the way ``hinttune eval`` parses it, because lighteval's extraction reads a
bare gold such as ``3\\sqrt{13}`` as ``3`` (a perfect model would score 0.864 on MATH-500).

    lighteval vllm \\
      "model_name=MODEL,dtype=bfloat16,max_model_length=32768,generation_parameters={temperature:0.6,top_p:0.95,max_new_tokens:32768}" \\
      "ht_aime24|0,ht_aime25|0,ht_hmmt25|0,ht_math500|0" \\
      --custom-tasks "$(python -c 'import hinttune.evaluation.lighteval_tasks as m; print(m.__file__)')"

Set ``EVAL_MODEL_PATH`` to the evaluated model so tokens are counted with its tokenizer (as
the official task file does), and ``HINTTUNE_EVAL_N`` for the samples per problem (default 16).
This module imports lighteval (``pip install lighteval``); it is written against lighteval
0.13's task API.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
from lighteval.metrics.metrics import Metrics
from lighteval.metrics.metrics_sample import SampleLevelComputation
from lighteval.metrics.utils.metric_utils import SampleLevelMetric
from lighteval.tasks.lighteval_task import LightevalTaskConfig
from lighteval.tasks.requests import Doc, SamplingMethod

from hinttune.core.config import PAPER_EVAL_PROMPT
from hinttune.evaluation.benchmarks import BENCHMARKS
from hinttune.evaluation.metrics import reasoning_tokens

N = int(os.environ.get("HINTTUNE_EVAL_N", "16"))


@lru_cache(maxsize=1)
def _count():
    path = os.environ.get("EVAL_MODEL_PATH")
    if path:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])
    return lambda text: len(text.split())


def lighteval_gold(gold: str) -> str:
    """The gold as lighteval must see it to parse it whole (as ``hinttune eval`` does)."""
    return f"\\boxed{{{gold}}}"


def paper_prompt(line: dict, task_name: str | None = None) -> Doc:
    problem = line.get("problem") or line.get("question")
    name = (task_name or "").split("|")[0].removeprefix("ht_")
    answer = BENCHMARKS[name].answer if name in BENCHMARKS else str
    return Doc(task_name=task_name, query=PAPER_EVAL_PROMPT.replace("{problem}", problem),
               choices=[lighteval_gold(answer(str(line["answer"])))], gold_index=0)


class ReasoningTokens(SampleLevelComputation):
    """Mean tokens inside <think> over a problem's samples (no closing tag: all reasoning)."""

    def compute(self, doc: Doc, model_response, **kwargs) -> float:
        return float(np.mean([reasoning_tokens(text, _count())[0] for text in model_response.text]))


class OutputTokens(SampleLevelComputation):
    """Mean tokens of the whole output over a problem's samples."""

    def compute(self, doc: Doc, model_response, **kwargs) -> float:
        return float(np.mean([_count()(text) for text in model_response.text]))


reasoning_tokens_metric = SampleLevelMetric(
    metric_name="reasoning_tokens", sample_level_fn=ReasoningTokens(),
    category=SamplingMethod.GENERATIVE, corpus_level_fn=np.mean, higher_is_better=False)
output_tokens_metric = SampleLevelMetric(
    metric_name="output_tokens", sample_level_fn=OutputTokens(),
    category=SamplingMethod.GENERATIVE, corpus_level_fn=np.mean, higher_is_better=False)


def _task(name: str) -> LightevalTaskConfig:
    bench = BENCHMARKS[name]
    return LightevalTaskConfig(
        name=f"ht_{name}", prompt_function=paper_prompt, hf_repo=bench.hub,
        hf_subset="main" if name == "gsm8k" else "default",
        hf_avail_splits=[bench.split], evaluation_splits=[bench.split], few_shots_split=None,
        few_shots_select=None, generation_size=32768,
        metrics=[Metrics.avg_at_n_math(sample_params={"n": N}),
                 Metrics.pass_at_k_math(sample_params={"k": 1, "n": N}),
                 reasoning_tokens_metric, output_tokens_metric],
        version=1)


TASKS_TABLE = [_task(name) for name in ("aime24", "aime25", "hmmt25", "math500", "amc23", "gsm8k")]
