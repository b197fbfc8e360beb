"""``hinttune compare``: accuracy and tokens of several evaluated models side by side, with the
token reduction against the first (the paper's headline number), and a plot of accuracy
against mean output tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from hinttune.errors import HinttuneError
from hinttune.files import atomic_writer


def load_results(path: str, label: str | None = None) -> dict[str, Any]:
    file = Path(path)
    if file.is_dir():
        file = file / "results.json"
    if not file.exists():
        raise HinttuneError(f"{path}: no results.json (run `hinttune eval` first)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HinttuneError(f"{file}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    data["label"] = label or data.get("label") or file.parent.name
    data["path"] = str(file.parent)
    return data


def unique_labels(results: list[dict[str, Any]]) -> None:
    """Two results named alike (e.g. two runs/*/eval folders) get the shortest distinguishing
    path; the comparison against the baseline depends on telling them apart."""
    for _ in range(4):
        labels = [r["label"] for r in results]
        clashes = {label for label in labels if labels.count(label) > 1}
        if not clashes:
            return
        for r in results:
            if r["label"] in clashes:
                parts = Path(r["path"]).resolve().parts
                depth = len(Path(r["label"]).parts) + 1
                r["label"] = "/".join(parts[-depth:]) if depth <= len(parts) else r["label"]
    seen: dict[str, int] = {}
    for r in results:  # identical paths given twice: numbered
        seen[r["label"]] = seen.get(r["label"], 0) + 1
        if seen[r["label"]] > 1:
            r["label"] = f"{r['label']} #{seen[r['label']]}"


SETTINGS = (("n", lambda r, b: r["benchmarks"][b].get("n", r.get("n"))),
            ("sampling", lambda r, b: r.get("sampling")),
            ("prompt", lambda r, b: r.get("prompt_template")),
            ("benchmark source", lambda r, b: r["benchmarks"][b].get("source")),
            ("problems", lambda r, b: r["benchmarks"][b].get("problems")),
            ("grader", lambda r, b: r.get("grader")))


def comparison_warnings(results: list[dict[str, Any]]) -> list[str]:
    """What makes the numbers not comparable: settings that differ, benchmarks not in every
    result (never dropped silently)."""
    warnings = []
    every = list(dict.fromkeys(b for r in results for b in r["benchmarks"]))
    for bench in every:
        have = [r for r in results if bench in r["benchmarks"]]
        if len(have) < len(results):
            missing = ", ".join(r["label"] for r in results if bench not in r["benchmarks"])
            warnings.append(f"{bench}: not compared, missing from {missing}")
            continue
        for name, get in SETTINGS:
            values = [get(r, bench) for r in results]
            if any(v != values[0] for v in values[1:]):
                shown = "; ".join(f"{r['label']}: {v}" for r, v in zip(results, values))
                warnings.append(f"{bench}: {name} differs ({shown})")
    return warnings


def comparison_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = results[0]
    rows = []
    names = [b for b in base["benchmarks"] if all(b in r["benchmarks"] for r in results)]
    for bench in names:
        ref = base["benchmarks"][bench]["mean_output_tokens"]
        for r in results:
            m = r["benchmarks"][bench]
            rows.append({"benchmark": bench, "model": r["label"], "accuracy": m["avg@n"],
                         "stderr": m["stderr"], "tokens": m["mean_output_tokens"],
                         "reasoning_tokens": m["mean_reasoning_tokens"],
                         "undecided": m.get("undecided_checks", 0), "samples": m.get("samples", 0),
                         "reduction": (1 - m["mean_output_tokens"] / ref) if ref else 0.0})
    if not rows:
        raise HinttuneError("the results share no benchmark")
    return rows


def comparison_table(rows: list[dict[str, Any]], baseline: str) -> Table:
    table = Table(title=f"accuracy and tokens (reduction against {baseline})")
    for column in ("benchmark", "model", "avg@n", "undecided", "mean tokens", "reasoning tokens",
                   "token reduction"):
        table.add_column(column, justify="left" if column in ("benchmark", "model") else "right")
    for r in rows:
        table.add_row(r["benchmark"], r["model"], f"{100 * r['accuracy']:.1f} ± {100 * r['stderr']:.1f}",
                      f"{r['undecided']}/{r['samples']}", f"{r['tokens']:,.0f}", f"{r['reasoning_tokens']:,.0f}",
                      "baseline" if r["model"] == baseline else f"{100 * r['reduction']:+.1f}%")
    mean_reduction = [r["reduction"] for r in rows if r["model"] != baseline]
    if mean_reduction:
        table.caption = f"mean token reduction: {100 * sum(mean_reduction) / len(mean_reduction):.1f}%"
    return table


def comparison_plot(rows: list[dict[str, Any]], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    fig, axes = plt.subplots(1, len(benches), figsize=(4.5 * len(benches), 4), squeeze=False)
    for ax, bench in zip(axes[0], benches):
        for r in (r for r in rows if r["benchmark"] == bench):
            ax.errorbar(r["tokens"], 100 * r["accuracy"], yerr=100 * r["stderr"], fmt="o", capsize=3,
                        label=r["model"])
            ax.annotate(r["model"], (r["tokens"], 100 * r["accuracy"]), textcoords="offset points",
                        xytext=(5, 5), fontsize=8)
        ax.set_title(bench)
        ax.set_xlabel("mean output tokens")
        ax.set_ylabel("avg@n accuracy (%)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_writer(path, "wb") as out:
        fig.savefig(out, dpi=110, format="png")
    plt.close(fig)
    return path
