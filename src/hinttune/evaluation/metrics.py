"""Evaluation metrics: pass@1 averaged over n samples (avg@n) with its standard error, the
unbiased pass@k estimator, majority vote (maj@n), paired tests of the accuracy difference
between two models (bootstrap interval, sign-flip permutation p-value, standard error), which
samples count (``decided``), and reasoning length (tokens inside ``<think>``).

Standard error convention: ``stderr`` is the population standard deviation of the
per-problem accuracies over sqrt(problems); ``stderr_sample`` uses the sample standard
deviation (ddof = 1), as lighteval reports it."""

from __future__ import annotations

import math
import random
from statistics import mean, pstdev, stdev
from typing import Any, Callable

from hinttune.core.reasoning import split_think


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
    root = math.sqrt(len(per_problem))
    out = {"avg@n": mean(per_problem),
           "stderr": pstdev(per_problem) / root if len(per_problem) > 1 else 0.0,
           "stderr_sample": stdev(per_problem) / root if len(per_problem) > 1 else 0.0}
    for k in ks_for(n):
        out[f"pass@{k}"] = mean(pass_at_k(len(c), sum(c), k) for c in correct)
    return out


def majority_accuracy(answers: list[list[tuple[str | None, bool]]]) -> float:
    """maj@n: per problem, the most frequent extracted answer among its samples (ties: the one
    seen first; samples with no answer do not vote) is scored; a problem with no answer at
    all scores 0."""
    if not answers:
        return 0.0
    scores = []
    for samples in answers:
        votes: dict[str, list[bool]] = {}
        for answer, correct in samples:
            if answer is not None:
                votes.setdefault(str(answer), []).append(correct)
        if not votes:
            scores.append(0.0)
            continue
        winner = max(votes.values(), key=len)  # max keeps the first of equal counts
        scores.append(1.0 if any(winner) else 0.0)
    return mean(scores)


def paired_bootstrap(base: list[float], other: list[float], resamples: int = 2000,
                     seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Mean accuracy difference (other - base) over the same problems, in the same order, and
    its percentile bootstrap interval: problems are resampled with replacement, keeping each
    problem's pair together."""
    if len(base) != len(other) or not base:
        raise ValueError("paired bootstrap needs the same, non-empty list of problems")
    diffs = [o - b for b, o in zip(base, other)]
    rng = random.Random(seed)
    size = len(diffs)
    means = sorted(sum(diffs[rng.randrange(size)] for _ in range(size)) / size for _ in range(resamples))
    tail = (1 - level) / 2
    low = means[int(math.floor(tail * (resamples - 1)))]
    high = means[int(math.ceil((1 - tail) * (resamples - 1)))]
    return mean(diffs), low, high


UNDECIDED = ("timeout", "error", "bad_gold")


def decided(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples an accuracy counts: a check that could not decide (it timed out or crashed
    after its retry, or the gold cannot be read) is neither right nor wrong, so it is left out
    of avg@n, pass@k, maj@n and every paired test alike, and reported by count."""
    return [s for s in samples if s.get("check") not in UNDECIDED]


def paired_test(base: list[float], other: list[float], resamples: int = 5000,
                seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """other - base over the same problems: the mean difference, its standard error, a paired
    bootstrap interval, and the two-sided p-value of a paired sign-flip permutation test (under
    no difference each problem's difference is as likely negated; the observed one counts
    among the resamples, so p is never 0)."""
    diff, low, high = paired_bootstrap(base, other, resamples=min(resamples, 2000), seed=seed, level=level)
    diffs = [o - b for b, o in zip(base, other)]
    size = len(diffs)
    se = stdev(diffs) / math.sqrt(size) if size > 1 else 0.0
    rng = random.Random(seed + 1)
    observed = abs(sum(diffs))
    extreme = sum(abs(sum(d if rng.random() < 0.5 else -d for d in diffs)) >= observed - 1e-12
                  for _ in range(resamples))
    return {"difference": diff, "stderr": se, "low": low, "high": high,
            "p_value": (extreme + 1) / (resamples + 1), "problems": size}


def reasoning_tokens(text: str, count: Callable[[str], int]) -> tuple[int, bool]:
    """Tokens inside <think>…</think> and whether the block was closed. An output with no
    closing tag counts as all reasoning (and is flagged by ``closed = False``)."""
    split = split_think(text)
    return count(split.reasoning), split.closed
