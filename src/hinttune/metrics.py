"""Evaluation metrics: pass@1 averaged over n samples (avg@n) with its standard error, the
unbiased pass@k estimator, and reasoning length (tokens inside ``<think>``)."""

from __future__ import annotations

import math
from statistics import mean, pstdev
from typing import Callable

from hinttune.reasoning import split_think


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with c correct of n samples (Chen et al., 2021):
    1 - C(n - c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def ks_for(n: int) -> list[int]:
    """k = 1, 2, 4, … up to n, and n itself."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks if ks[-1] == n else ks + [n]


def accuracy(correct: list[list[bool]]) -> dict[str, float]:
    """avg@n over problems and its standard error (between-problem spread / sqrt(problems)),
    plus pass@k for every k in ``ks_for(n)``."""
    if not correct:
        return {"avg@n": 0.0, "stderr": 0.0}
    per_problem = [sum(c) / len(c) for c in correct]
    n = min(len(c) for c in correct)
    out = {"avg@n": mean(per_problem),
           "stderr": pstdev(per_problem) / math.sqrt(len(per_problem)) if len(per_problem) > 1 else 0.0}
    for k in ks_for(n):
        out[f"pass@{k}"] = mean(pass_at_k(len(c), sum(c), k) for c in correct)
    return out


def reasoning_tokens(text: str, count: Callable[[str], int]) -> tuple[int, bool]:
    """Tokens inside <think>…</think> and whether the block was closed. An output with no
    closing tag counts as all reasoning (and is flagged by ``closed = False``)."""
    split = split_think(text)
    return count(split.reasoning), split.closed
