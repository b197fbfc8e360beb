"""``hinttune compare``'s figure, one column per benchmark: accuracy against mean output
tokens (with standard errors), accuracy at a token budget (what each model would score if
every output were cut at B tokens, computed from the stored samples: an output longer than B
counts as wrong, nothing is generated again), and the distribution of output tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hinttune.core.plots import pyplot, save
from hinttune.evaluation.compare import read_samples


def budget_curve(samples: list[dict[str, Any]], budgets: list[int]) -> list[float]:
    """avg@n at each budget: a sample counts when it is correct and fits in the budget."""
    groups: dict[str, list[tuple[bool, int]]] = {}
    for s in samples:
        groups.setdefault(s["id"], []).append((bool(s["correct"]), int(s.get("output_tokens") or 0)))
    curve = []
    for budget in budgets:
        per_problem = [sum(c and t <= budget for c, t in g) / len(g) for g in groups.values()]
        curve.append(sum(per_problem) / len(per_problem) if per_problem else 0.0)
    return curve


def comparison_plot(rows: list[dict[str, Any]], results: list[dict[str, Any]], path: Path) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    samples = {(r["label"], b): read_samples(r, b) for r in results for b in benches}
    with_samples = any(v for v in samples.values())
    height = 3 if with_samples else 1
    fig, axes = plt.subplots(height, len(benches), figsize=(4.8 * len(benches), 3.8 * height), squeeze=False)
    for col, bench in enumerate(benches):
        ax = axes[0][col]
        for r in (r for r in rows if r["benchmark"] == bench):
            ax.errorbar(r["tokens"], 100 * r["accuracy"], yerr=100 * r["stderr"], fmt="o", capsize=3,
                        label=r["model"])
            ax.annotate(r["model"], (r["tokens"], 100 * r["accuracy"]), textcoords="offset points",
                        xytext=(5, 5), fontsize=8)
        ax.set(title=bench, xlabel="mean output tokens", ylabel="avg@n accuracy (%)")
        top = max((100 * (r["accuracy"] + r["stderr"]) for r in rows if r["benchmark"] == bench), default=0)
        ax.set_ylim(0, min(105, max(10, 1.15 * top)))  # accuracy starts at 0, never below
        ax.grid(alpha=0.3)
        if not with_samples:
            continue
        found = {r["label"]: samples[(r["label"], bench)] for r in results if samples[(r["label"], bench)]}
        longest = max((int(s.get("output_tokens") or 0) for ss in found.values() for s in ss), default=1)
        budgets = sorted({max(1, round(longest * i / 40)) for i in range(41)})
        for label, ss in found.items():
            axes[1][col].plot(budgets, [100 * a for a in budget_curve(ss, budgets)], label=label)
            tokens = [int(s.get("output_tokens") or 0) for s in ss]
            axes[2][col].hist(tokens, bins=30, range=(0, longest), alpha=0.5, label=label)
        axes[1][col].set(title=f"{bench}: accuracy at a token budget", xlabel="budget B (output tokens)",
                         ylabel="avg@n if cut at B (%)", ylim=(0, min(105, max(10, 1.15 * top))))
        axes[2][col].set(title=f"{bench}: output tokens", xlabel="output tokens", ylabel="samples")
        for ax in (axes[1][col], axes[2][col]):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return path
