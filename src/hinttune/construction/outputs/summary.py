"""Stage 7, summary: what the dataset is made of - state distribution, K* histogram, tokens
per state, unsolved problems, which grader decided - as a table, a JSON file and PNG plots."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from statistics import mean, median
from typing import Any

from rich.table import Table

from hinttune.construction.states import CUT_TRACE, FULL_HINT, FULL_TRACE, NO_HINT, SPARSE_HINT, Assignment
from hinttune.core.files import write_json, write_text
from hinttune.core.plots import pyplot, save
from hinttune.core.provenance import versions
from hinttune.core.store import stable_hash

log = logging.getLogger(__name__)
STATES = (NO_HINT, SPARSE_HINT, FULL_HINT)


def summarize(assignments: list[Assignment], meta: dict[str, dict[str, Any]],
              graders: Counter, probe_stats: dict[str, int]) -> dict[str, Any]:
    states = Counter(a.state for a in assignments)
    tokens: dict[str, dict[str, float]] = {}
    for state in STATES:
        rows = [meta[a.problem_id] for a in assignments if a.state == state]
        values = [r["output_tokens"] for r in rows]
        if values:
            tokens[state] = {"mean": mean(values), "median": median(values), "total": sum(values)}
    exported = [a for a in assignments if a.exported]
    return {
        "problems": len(assignments),
        "records": len(exported),
        "states": {s: states.get(s, 0) for s in (*STATES, "unsolved", "incomplete")},
        "k_star": dict(sorted(Counter(a.k_star for a in exported if a.state == SPARSE_HINT).items())),
        "episodes": dict(sorted(Counter(a.n for a in assignments).items())),
        "output_tokens": tokens,
        "token_unit": next(iter(meta.values()), {}).get("token_unit", "tokens"),
        "unverified_records": sum(not a.verified for a in exported),
        "excluded": [{"id": a.problem_id, "state": a.state, "reason": a.note}
                     for a in assignments if not a.exported],
        "graders": dict(graders),
        "probing": probe_stats,
        "versions": versions(),  # what made these numbers
    }


def dataset_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Records, state mix, mean target tokens and the share of the think trace kept, from a
    dataset's meta rows (exported records only)."""
    kept = [0.0 if r["state"] == NO_HINT else 1.0 if r["state"] not in (SPARSE_HINT, CUT_TRACE)
            else (r["hint_tokens"] / r["trace_tokens"] if r["trace_tokens"] else 0.0) for r in rows]
    return {"records": len(rows), "states": dict(Counter(r["state"] for r in rows)),
            "mean_output_tokens": sum(r["output_tokens"] for r in rows) / len(rows) if rows else 0.0,
            "trace_share": sum(kept) / len(kept) if kept else 0.0}


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"Hint Tuning dataset: {plural(summary['records'], 'record')} from "
                  f"{plural(summary['problems'], 'problem')}")
    for column in ("state", "records", "share", f"mean output {summary['token_unit']}"):
        table.add_column(column, justify="left" if column == "state" else "right")
    total = max(summary["problems"], 1)
    for state, count in summary["states"].items():
        if count or state in STATES:
            mean_tokens = summary["output_tokens"].get(state, {}).get("mean")
            table.add_row(state, str(count), f"{100 * count / total:.0f}%",
                          f"{mean_tokens:,.0f}" if mean_tokens is not None else "-")
    ks = ", ".join(f"K*={k}: {n}" for k, n in summary["k_star"].items()) or "none"
    graders = ", ".join(f"{g}: {n}" for g, n in summary["graders"].items()) or "none"
    judged, total_verdicts = summary["graders"].get("judge", 0), sum(summary["graders"].values())
    if judged and judged < total_verdicts:  # hybrid: what the math rules left to the judge
        graders += f" ({100 * judged / total_verdicts:.0f}% sent to the judge)"
    p = summary["probing"]
    table.caption = (f"Sparse-Hint {ks} · verdicts by {graders} · probing ({p.get('strategy', 'linear')}): "
                     f"{p.get('problems', 0)} problems, {p.get('generations', 0)} generations, "
                     f"{p.get('rounds', 0)} rounds" + (f", {p['beyond_linear']} asked past K* by look-ahead"
                                                       if p.get("beyond_linear") else ""))
    if "estimate" in p:
        e = p["estimate"]
        table.caption += (f" (planned: {e['generations']:,.0f} generations, {e['rounds']} rounds, "
                          f"{e['strategy']})")
    return table


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


OUTCOME_COLORS = {NO_HINT: "#4c9f70", SPARSE_HINT: "#e0a030", FULL_HINT: "#c0504d",
                  FULL_TRACE: "#8064a2", CUT_TRACE: "#4bacc6",  # the baselines' targets
                  "unsolved": "#9a9a9a", "incomplete": "#5b7db1"}


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


def _bars(ax: Any, labels: list[str], counts: list[int], colors: list[str]) -> None:
    bars = ax.bar(labels, counts, color=colors, width=0.6)
    ax.bar_label(bars, labels=[str(c) for c in counts], padding=2)
    ax.set_ylim(0, max(max(counts, default=0), 1) * 1.18)  # room for the count labels


def write_plots(summary: dict[str, Any], meta: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Every outcome with its count (states, unsolved, incomplete), the K* histogram and the
    target lengths per state; panels with one value or none stay readable."""
    plt = pyplot()
    if plt is None:
        return []
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    outcomes = list(summary["states"])
    counts = [summary["states"][s] for s in outcomes]
    _bars(axes[0], outcomes, counts, [OUTCOME_COLORS.get(s, "#888888") for s in outcomes])
    axes[0].set_title(f"outcome of {plural(summary['problems'], 'problem')}")
    axes[0].set_ylabel("problems")
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].tick_params(axis="x", labelsize=9)
    ks = summary["k_star"]
    if ks:
        # every k shown, gaps included, and at least 1..5 so one bar is not the whole axis
        span = list(range(1, max(5, max(int(k) for k in ks)) + 1))
        _bars(axes[1], [str(k) for k in span], [ks.get(k, ks.get(str(k), 0)) for k in span],
              [OUTCOME_COLORS[SPARSE_HINT]] * len(span))
        axes[1].set_xlim(-0.75, len(span) - 0.25)
        axes[1].yaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1].set_ylabel("Sparse-Hint records")
    else:
        _empty(axes[1], "no Sparse-Hint records")
    axes[1].set_title("minimal effective hint K*")
    axes[1].set_xlabel("episodes in the hint")
    unit = summary["token_unit"]
    present = [(s, [m["output_tokens"] for m in meta if m["state"] == s]) for s in STATES]
    present = [(s, d) for s, d in present if d]
    if present:
        parts = axes[2].boxplot([d for _, d in present], patch_artist=True, widths=0.5)
        axes[2].set_xticks(range(1, len(present) + 1),
                           [f"{s}\n(n={len(d)})" for s, d in present])
        for i, (patch, (state, values)) in enumerate(zip(parts["boxes"], present), 1):
            patch.set_facecolor(OUTCOME_COLORS[state])
            patch.set_alpha(0.55)
            # the records themselves, so a one-record box is a visible point, not a bare line
            offsets = [(j % 7 - 3) * 0.04 for j in range(len(values))]
            axes[2].scatter([i + o for o in offsets], values, s=14, color=OUTCOME_COLORS[state],
                            edgecolors="black", linewidths=0.4, zorder=3)
        axes[2].set_ylabel(unit)
    else:
        _empty(axes[2], "no records")
    axes[2].set_title(f"SFT target length ({unit})")
    fig.suptitle(f"Hint Tuning dataset: {plural(summary['records'], 'record')} from "
                 f"{plural(summary['problems'], 'problem')}")
    fig.tight_layout()
    path = out_dir / "summary.png"
    save(fig, path)
    return [path]


def write_summary(summary: dict[str, Any], meta: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """summary.json and summary.png; the plot is drawn again only when what it shows changed
    (a re-run of a finished run leaves both as they are)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = stable_hash(summary, meta)
    stamp, plot = out_dir / ".summary.hash", out_dir / "summary.png"
    if stamp.exists() and stamp.read_text() == fingerprint and plot.exists() \
            and (out_dir / "summary.json").exists():
        return [out_dir / "summary.json", plot, *([out_dir / "probes.png"] if "probes" in summary else [])]
    path = write_json(out_dir / "summary.json", summary)
    written = [path, *write_plots(summary, meta, out_dir)]
    if "probes" in summary:
        from hinttune.construction.outputs.probe_comparison import write_probes_plot

        written += write_probes_plot(summary, out_dir)
    write_text(stamp, fingerprint)
    return written


def eval_table(results: dict[str, Any]) -> Table:
    table = Table(title=f"{results['model']} · n={results['n']}")
    columns = ("benchmark", "problems", "avg@n", "pass@k", "mean tokens", "reasoning tokens",
               "no </think>", "cut by length", "undecided")
    for column in columns:
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for name, m in results["benchmarks"].items():
        passes = " ".join(f"@{k[5:]} {100 * v:.0f}" for k, v in m.items() if k.startswith("pass@"))
        table.add_row(name, str(m["problems"]), f"{100 * m['avg@n']:.1f} ± {100 * m['stderr']:.1f}",
                      passes, f"{m['mean_output_tokens']:,.0f}", f"{m['mean_reasoning_tokens']:,.0f}",
                      str(m["unclosed_think"]), f"{100 * m['truncated_share']:.0f}%",
                      f"{m.get('undecided_checks', 0)}/{m.get('samples', 0)}")
    truncated = results.get("truncated", "no_answer")
    table.caption = ("undecided checks are left out of avg@n; outputs cut before </think> are graded "
                     + ("whole (as the paper's harness)" if truncated == "whole_output" else "as having no answer"))
    return table
