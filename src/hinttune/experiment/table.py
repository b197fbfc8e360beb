"""The experiment's table: per dataset (pooled over its seeds) and benchmark, accuracy (avg@n)
with a 95% interval over problems, the spread across seeds, mean output tokens and the
truncation rate; the paired difference against the reference (per-problem accuracy pooled
over seeds, sign-flip permutation p-value); and how many training problems share an 8-word
n-gram with the benchmark. Written to experiment.json, experiment.md and experiment.png."""

from __future__ import annotations

from pathlib import Path
from statistics import mean, pstdev, stdev
from typing import Any

from rich.table import Table

from hinttune.core.config import ExperimentConfig
from hinttune.core.decontamination import find_contamination
from hinttune.core.files import write_json, write_text
from hinttune.core.problems import Problem
from hinttune.evaluation.compare import per_problem_accuracy, read_samples
from hinttune.evaluation.metrics import paired_test
from hinttune.experiment.datasets import Dataset
from hinttune.experiment.jobs import BASE, Job

OVERLAP_NGRAM = 8


def _pooled(results: list[dict[str, Any]], bench: str) -> dict[str, float]:
    """Per-problem accuracy over every sample of every seed's evaluation."""
    samples = [s for r in results for s in (read_samples(r, bench) or [])]
    return per_problem_accuracy(samples)


def _overlap(dataset: Dataset, problems: list[Problem]) -> int:
    """Training problems of the dataset that share an n-gram with the benchmark's problems."""
    mine = [Problem(str(i), text, "", i) for i, text in enumerate(dataset.problems)]
    return len({m.problem_id for m in find_contamination(mine, {"b": [p.problem for p in problems]}, OVERLAP_NGRAM)})


def build_table(cfg: ExperimentConfig, jobs: list[Job], datasets: list[Dataset],
                results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``results``: each finished evaluation's results.json (with ``path``), by job id."""
    from hinttune.evaluation.benchmarks import load_benchmark

    groups: dict[str, list[dict[str, Any]]] = {}  # model (base or dataset) -> its seeds' results
    for job in jobs:
        if job.kind == "eval" and job.id in results:
            groups.setdefault(job.dataset or BASE, []).append(results[job.id])
    evals = [j for j in jobs if j.kind == "eval"]
    benchmarks = list(evals[0].config.benchmarks) if evals else []
    reference = groups.get(cfg.reference, [])
    rows = []
    for bench in benchmarks:
        problems = load_benchmark(bench, evals[0].config)
        ref_acc = _pooled(reference, bench) if reference else {}
        for model, runs in groups.items():
            metrics = [r["benchmarks"][bench] for r in runs if bench in r["benchmarks"]]
            if not metrics:
                continue
            acc = _pooled(runs, bench)
            per_problem = list(acc.values())
            se = stdev(per_problem) / len(per_problem) ** 0.5 if len(per_problem) > 1 else 0.0
            accuracy = mean(per_problem) if per_problem else 0.0
            seeds_avg = [m["avg@n"] for m in metrics]
            row = {"benchmark": bench, "model": model, "seeds": len(runs), "problems": len(per_problem),
                   "accuracy": accuracy, "low": accuracy - 1.96 * se, "high": accuracy + 1.96 * se,
                   "seed_std": pstdev(seeds_avg) if len(seeds_avg) > 1 else None,
                   "tokens": mean(m["mean_output_tokens"] for m in metrics),
                   "truncated": mean(m.get("truncated_share") or 0.0 for m in metrics),
                   "overlap": next((_overlap(d, problems) for d in datasets if d.name == model), None),
                   "vs_reference": None}
            common = [p for p in acc if p in ref_acc]
            if model != cfg.reference and common:
                row["vs_reference"] = paired_test([ref_acc[p] for p in common], [acc[p] for p in common])
            rows.append(row)
    return {"name": cfg.name, "reference": cfg.reference, "match": cfg.training.match,
            "seeds": cfg.training.seeds, "datasets": {d.name: {"path": d.path, "records": d.records}
                                                      for d in datasets},
            "steps": {j.dataset: j.config.max_steps for j in jobs if j.kind == "train"},
            "rows": rows}


def _cell(row: dict[str, Any]) -> dict[str, str]:
    test = row["vs_reference"]
    return {"benchmark": row["benchmark"], "model": row["model"],
            "accuracy": f"{100 * row['accuracy']:.1f} [{100 * row['low']:.1f}, {100 * row['high']:.1f}]",
            "seed sd": "-" if row["seed_std"] is None else f"{100 * row['seed_std']:.1f}",
            "tokens": f"{row['tokens']:,.0f}", "truncated": f"{100 * row['truncated']:.0f}%",
            "vs reference": "-" if test is None else
            f"{100 * test['difference']:+.1f} (p={test['p_value']:.3f})",
            "overlap": "-" if row["overlap"] is None else str(row["overlap"])}


COLUMNS = ("benchmark", "model", "accuracy", "seed sd", "tokens", "truncated", "vs reference", "overlap")
CAPTION = ("accuracy: avg@n in %, pooled over seeds, with its 95% interval over problems · seed sd: the "
           "spread of avg@n across training seeds · tokens: mean output tokens · vs reference: paired "
           "difference in points over problems (sign-flip permutation p) · overlap: training problems "
           f"sharing an {OVERLAP_NGRAM}-word n-gram with the benchmark")


def rich_table(table: dict[str, Any]) -> Table:
    out = Table(title=f"experiment {table['name']}: reference {table['reference']}, "
                f"equal {table['match']}, seeds {table['seeds']}")
    for column in COLUMNS:
        out.add_column(column, justify="left" if column in ("benchmark", "model") else "right")
    for row in table["rows"]:
        out.add_row(*_cell(row).values())
    out.caption = CAPTION
    return out


def markdown(table: dict[str, Any]) -> str:
    lines = [f"# Experiment {table['name']}", "",
             f"Reference: {table['reference']}; equal {table['match']} "
             f"(steps: {', '.join(f'{k} {v}' for k, v in table['steps'].items())}); seeds {table['seeds']}.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row).values()) + " |" for row in table["rows"]]
    return "\n".join(lines + ["", CAPTION + ".", ""])


def plot(table: dict[str, Any], path: Path) -> Path | None:
    """Accuracy against mean output tokens, one panel per benchmark, as in the paper."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    benchmarks = list(dict.fromkeys(r["benchmark"] for r in table["rows"]))
    if not benchmarks:
        return None
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(4.5 * len(benchmarks), 3.8), squeeze=False)
    for ax, bench in zip(axes[0], benchmarks):
        for row in (r for r in table["rows"] if r["benchmark"] == bench):
            ax.errorbar(row["tokens"], 100 * row["accuracy"],
                        yerr=[[100 * (row["accuracy"] - row["low"])], [100 * (row["high"] - row["accuracy"])]],
                        fmt="o" if row["model"] != table["reference"] else "*", markersize=9, capsize=3)
            ax.annotate(row["model"], (row["tokens"], 100 * row["accuracy"]), textcoords="offset points",
                        xytext=(5, 5), fontsize=8)
        ax.set_title(bench)
        ax.set_xlabel("mean output tokens")
        ax.set_ylabel("accuracy (%)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)  # whole or not at all
    return path


def write_outputs(table: dict[str, Any], folder: Path) -> list[Path]:
    written = [write_json(folder / "experiment.json", table), write_text(folder / "experiment.md", markdown(table))]
    picture = plot(table, folder / "experiment.png")
    return written + ([picture] if picture else [])
