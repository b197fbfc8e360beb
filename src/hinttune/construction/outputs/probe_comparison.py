"""Several instruct probes side by side (``instruct: [a, b, ...]``): a table and a plot of
each probe's dataset - state mix, target length, share of the trace kept, probing cost - and
the combined one, with how often the probes agreed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from hinttune.construction.outputs.summary import OUTCOME_COLORS, STATES
from hinttune.core.plots import pyplot, save



def _rows(probes: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = list(probes["models"].items())
    if "combined" in probes:
        rows.append((f"combined:{probes['combined']['rule']}", probes["combined"]))
    return rows


def probes_table(summary: dict[str, Any]) -> Table:
    probes = summary["probes"]
    table = Table(title="instruct probes side by side (same think traces)")
    for column in ("probe", "records", "No / Sparse / Full", f"mean {summary['token_unit']}",
                   "trace kept", "generations"):
        table.add_column(column, justify="left" if column == "probe" else "right", overflow="fold")
    for name, row in _rows(probes):
        table.add_row(name, str(row["records"]), " / ".join(str(row["states"].get(s, 0)) for s in STATES),
                      f"{row['mean_output_tokens']:,.0f}", f"{100 * row['trace_share']:.0f}%",
                      f"{row['probing']['generations']:,}" if "probing" in row else "-")
    table.caption = " · ".join(
        f"{pair}: same state {p['same_state']}/{p['problems']}, same K* {p['same_k_star']}/{p['problems']}"
        for pair, p in probes["k_star_agreement"].items())
    return table


def write_probes_plot(summary: dict[str, Any], out_dir: Path) -> list[Path]:
    """probes.png: each probe's state mix (stacked) and mean SFT target length."""
    plt = pyplot()
    if plt is None:
        return []
    rows = _rows(summary["probes"])
    names = [name for name, _ in rows]
    fig, (mix, length) = plt.subplots(1, 2, figsize=(12, 4.2))
    bottom = [0] * len(rows)
    for state in STATES:
        counts = [row["states"].get(state, 0) for _, row in rows]
        bars = mix.bar(names, counts, bottom=bottom, color=OUTCOME_COLORS[state], label=state, width=0.6)
        mix.bar_label(bars, labels=[str(c) if c else "" for c in counts], label_type="center")
        bottom = [b + c for b, c in zip(bottom, counts)]
    mix.set_title("records by state")
    mix.set_ylabel("records")
    mix.legend(fontsize=8)
    means = [row["mean_output_tokens"] for _, row in rows]
    bars = length.bar(names, means, color="#5b7db1", width=0.6)
    length.bar_label(bars, labels=[f"{m:,.0f}" for m in means], padding=2)
    length.set_ylim(0, max(max(means, default=0), 1) * 1.18)
    length.set_title(f"mean SFT target length ({summary['token_unit']})")
    for ax in (mix, length):
        ax.tick_params(axis="x", labelsize=9, rotation=15)
    fig.suptitle(f"instruct probes on {summary['problems']:,} problems")
    fig.tight_layout()
    path = out_dir / "probes.png"
    save(fig, path)
    return [path]
