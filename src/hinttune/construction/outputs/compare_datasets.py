"""``hinttune compare`` on datasets: several exports (Hint Tuning, other probes, the combined
one, baselines, other runs) side by side - state mix, target-token distribution, the share of
the think trace kept - and how each agrees with the first, problem by problem.

A dataset is read from its meta sidecar (``NAME.meta.jsonl``, one row per record, written by
every export): a sidecar, the dataset file beside it, the folder holding it, or a run
directory (its ``export/``)."""

from __future__ import annotations

from pathlib import Path
from statistics import median
from typing import Any

from rich.table import Table

from hinttune.construction.states import CUT_TRACE, FULL_TRACE
from hinttune.construction.outputs.summary import OUTCOME_COLORS, STATES, dataset_stats
from hinttune.core.errors import HinttuneError
from hinttune.core.files import read_jsonl
from hinttune.core.plots import pyplot, save

ORDER = (*STATES, FULL_TRACE, CUT_TRACE)


def sidecar(path: str) -> Path | None:
    """The meta sidecar a path names, or None when it is not a dataset export."""
    p = Path(path)
    if p.is_dir():
        if (p / "export").is_dir() and not list(p.glob("*.meta.jsonl")):
            p = p / "export"
        found = sorted(p.glob("*.meta.jsonl"))
        return found[0] if len(found) == 1 else None
    if p.name.endswith(".meta.jsonl"):
        return p if p.exists() else None
    for suffix in (".messages.jsonl", ".json"):
        if p.name.endswith(suffix):
            twin = p.with_name(p.name[:-len(suffix)] + ".meta.jsonl")
            return twin if twin.exists() else None
    return None


def load_dataset(path: str, label: str | None = None) -> dict[str, Any]:
    """Meta rows and a label: the run's name for export/NAME.meta.jsonl, the folder's for
    export/probes/NAME/, export/baselines/NAME/ and export/combined/."""
    if not Path(path).exists():
        raise HinttuneError(f"{path}: no such file or folder")
    meta = sidecar(path)
    if meta is None:
        raise HinttuneError(f"{path}: not a dataset export (no single NAME.meta.jsonl in it or beside it)")
    rows = []
    for lineno, row in read_jsonl(meta):
        missing = [f for f in ("id", "state", "output_tokens", "hint_tokens", "trace_tokens") if f not in row]
        if missing:
            raise HinttuneError(f"{meta}: line {lineno}: no field {missing[0]!r}")
        rows.append(row)
    named = meta.parent.parent if meta.parent.name == "export" else meta.parent  # the folder its label names
    return {"label": label or named.name, "path": str(named), "file": str(meta), "rows": rows,
            "unit": rows[0].get("token_unit", "tokens") if rows else "tokens"}


def agreement(first: list[dict[str, Any]], other: list[dict[str, Any]]) -> dict[str, int]:
    mine = {r["id"]: r for r in first}
    theirs = {r["id"]: r for r in other}
    both = [i for i in mine if i in theirs]
    return {"both": len(both), "only_first": len(mine) - len(both), "only_this": len(theirs) - len(both),
            "same_state": sum(mine[i]["state"] == theirs[i]["state"] for i in both),
            "same_output_tokens": sum(mine[i]["output_tokens"] == theirs[i]["output_tokens"] for i in both)}


def percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default), so p50 is the median
    and p90 never falls below it."""
    at = q * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def dataset_rows(loaded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for data in loaded:
        tokens = sorted(r["output_tokens"] for r in data["rows"])
        out.append({"label": data["label"], **dataset_stats(data["rows"]),
                    "median_output_tokens": median(tokens) if tokens else 0,
                    "p90_output_tokens": percentile(tokens, 0.9) if tokens else 0,
                    "agreement": agreement(loaded[0]["rows"], data["rows"])})
    return out


def datasets_table(rows: list[dict[str, Any]], unit: str) -> Table:
    table = Table(title=f"datasets side by side (agreement with {rows[0]['label']})")
    states = [s for s in ORDER if any(s in r["states"] for r in rows)]
    for column in ("dataset", "records", *states, f"mean {unit}", "median", "p90", "trace kept",
                   "shared", "same state"):
        table.add_column(column, justify="left" if column == "dataset" else "right",
                         no_wrap=column == "dataset", overflow="fold")
    for r in rows:
        a = r["agreement"]
        table.add_row(r["label"], str(r["records"]), *(str(r["states"].get(s, 0)) for s in states),
                      f"{r['mean_output_tokens']:,.0f}", f"{r['median_output_tokens']:,.0f}",
                      f"{r['p90_output_tokens']:,.0f}", f"{100 * r['trace_share']:.0f}%",
                      str(a["both"]), f"{a['same_state']}/{a['both']}")
    return table


def datasets_plot(rows: list[dict[str, Any]], loaded: list[dict[str, Any]], path: Path) -> bool:
    """State mix (stacked) and the distribution of SFT target lengths, per dataset."""
    plt = pyplot()
    if plt is None:
        return False
    labels = [r["label"] for r in rows]
    fig, (mix, lengths) = plt.subplots(1, 2, figsize=(13, 4.4))
    bottom = [0] * len(rows)
    for state in ORDER:
        counts = [r["states"].get(state, 0) for r in rows]
        if any(counts):
            mix.bar(labels, counts, bottom=bottom, color=OUTCOME_COLORS[state], label=state, width=0.6)
            bottom = [b + c for b, c in zip(bottom, counts)]
    mix.set_title("records by state")
    mix.legend(fontsize=8)
    data = [[row["output_tokens"] for row in d["rows"]] or [0] for d in loaded]
    lengths.boxplot(data, showfliers=True)
    lengths.set_xticks(range(1, len(labels) + 1), labels)
    lengths.set_title(f"SFT target length ({loaded[0]['unit']})")
    for ax in (mix, lengths):
        ax.tick_params(axis="x", labelsize=9, rotation=15)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save(fig, path)
    return True
