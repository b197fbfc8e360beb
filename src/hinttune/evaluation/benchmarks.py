"""Built-in benchmark definitions: where each loads from (hub by default, a local file with
``--data-file``), which fields hold the problem and the answer, and how the answer is written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from hinttune.core.config import EvalConfig, ProblemsConfig
from hinttune.core.errors import HinttuneError
from hinttune.core.problems import Problem, load_problems


def gsm8k_answer(solution: str) -> str:
    """GSM8K solutions end with '#### 18' (thousands may carry commas)."""
    match = re.search(r"####\s*(.+)\s*$", solution.strip())
    return match.group(1).replace(",", "").strip() if match else solution


@dataclass(frozen=True)
class Benchmark:
    name: str
    hub: str
    split: str
    size: int  # problems in the default source
    answer: Callable[[str], str] = str
    note: str = ""


BENCHMARKS = {b.name: b for b in (
    Benchmark("aime24", "HuggingFaceH4/aime_2024", "train", 30,
              note="AIME 2024 I+II (the official task file's 'aime24', AI-MO/aimo-validation-aime, "
                   "holds AIME 2022-2024: 90 problems)"),
    Benchmark("aime25", "MathArena/aime_2025", "train", 30, note="AIME 2025 I+II"),
    Benchmark("hmmt25", "MathArena/hmmt_feb_2025", "train", 30, note="HMMT February 2025"),
    Benchmark("math500", "HuggingFaceH4/MATH-500", "test", 500, note="MATH-500 (PRM800K split)"),
    Benchmark("amc23", "math-ai/amc23", "test", 40, note="AMC 2023; answers are floats such as 27.0"),
    Benchmark("gsm8k", "openai/gsm8k", "test", 1319, gsm8k_answer, note="GSM8K test (config 'main')"),
)}


def load_benchmark(name: str, cfg: EvalConfig) -> list[Problem]:
    """Problems with their gold final answers. Unknown names need ``data_files[name]``."""
    bench = BENCHMARKS.get(name)
    source = cfg.data_files.get(name) or cfg.hub.get(name) or (bench.hub if bench else None)
    if source is None:
        raise HinttuneError(f"benchmark {name!r}: not built in ({', '.join(BENCHMARKS)}); give its "
                            f"file with --data-file {name}=PATH")
    fields = cfg.fields.get(name, {})
    if source == "openai/gsm8k" and name not in cfg.data_files:
        source = "openai/gsm8k:main"
    split = cfg.splits.get(name) or (bench.split if bench else "train")
    problems_cfg = ProblemsConfig(source=source, split=split,
                                  problem_field=fields.get("problem"), answer_field=fields.get("answer"),
                                  limit=cfg.limit)
    loaded = load_problems(problems_cfg)
    transform = bench.answer if bench else str
    return [Problem(p.id, p.problem, transform(p.gold_answer), p.index, p.tags) for p in loaded.problems]
