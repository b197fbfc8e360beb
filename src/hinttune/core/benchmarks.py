"""The benchmarks hinttune knows: where each loads from by default (the hub), its split and
size, and how its answer is written. ``hinttune eval`` scores on them; decontamination checks
construction problems against them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable


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
