"""``hinttune compare``: accuracy and tokens of several evaluated models side by side, with the
token reduction and paired tests against a reference (the first, or any named), every pair on
request, and a plot of accuracy against mean output tokens."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.table import Table

from hinttune.core.errors import HinttuneError
from hinttune.core.files import read_json, read_jsonl
from hinttune.evaluation.metrics import decided, paired_test


def _results_file(path: str) -> Path:
    file = Path(path)
    if file.is_dir():
        if (file / "results.json").exists():
            return file / "results.json"
        found = sorted(file.rglob("results_*.json"))  # lighteval: results/<model>/results_<date>.json
        if found:
            return found[-1]
        file = file / "results.json"
    if not file.exists():
        raise HinttuneError(f"{path}: no results.json (run `hinttune eval` first) and no lighteval "
                            "results_*.json")
    return file


def load_results(path: str, label: str | None = None) -> dict[str, Any]:
    """A ``hinttune eval`` results.json, or a lighteval results file made with
    ``hinttune.evaluation.lighteval_tasks`` (or the official task file)."""
    file = _results_file(path)
    data = read_json(file)
    if "config_general" in data and "results" in data:
        data = from_lighteval(data, file)
    data["label"] = label or data.get("label") or file.parent.name
    data["path"] = str(file.parent)
    return data


def _benchmark_of(task: str) -> str | None:
    from hinttune.evaluation.benchmarks import BENCHMARKS

    for part in re.split(r"[|:]", task):
        name = part.removeprefix("ht_")
        if name in BENCHMARKS:
            return name
    return None


def from_lighteval(data: dict[str, Any], file: Path) -> dict[str, Any]:
    """lighteval's aggregated metrics in hinttune's shape: avg@n (the largest n reported) with
    lighteval's standard error (sample standard deviation), and the token metrics."""
    benchmarks: dict[str, dict[str, Any]] = {}
    for task, metrics in data["results"].items():
        name = _benchmark_of(task)
        if name is None or not isinstance(metrics, dict):
            continue
        avg = [(int(m.group(1)), key) for key in metrics
               if (m := re.fullmatch(r"avg@n:n=(\d+)", key))]
        if not avg:
            continue
        n, key = max(avg)
        stderr = metrics.get(f"{key}_stderr") or 0.0
        benchmarks[name] = {"avg@n": metrics[key], "stderr": stderr, "stderr_sample": stderr, "n": n,
                            "mean_output_tokens": metrics.get("output_tokens", 0.0),
                            "mean_reasoning_tokens": metrics.get("reasoning_tokens", 0.0),
                            "source": "lighteval"}
    if not benchmarks:
        raise HinttuneError(f"{file}: a lighteval results file with no avg@n of a known benchmark")
    general = data.get("config_general", {})
    model = general.get("model_name") or (general.get("model_config") or {}).get("model_name")
    return {"model": model, "backend": "lighteval", "benchmarks": benchmarks,
            "grader": "lighteval", "label": None}


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
            ("grader", lambda r, b: r.get("grader")),
            ("truncated outputs graded as", lambda r, b: r.get("truncated", "no_answer")))


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


def read_samples(result: dict[str, Any], bench: str) -> list[dict[str, Any]] | None:
    """A hinttune eval's samples of one benchmark (None for lighteval results or when gone)."""
    path = Path(result["path"]) / f"samples_{bench}.jsonl"
    if result.get("backend") == "lighteval" or not path.exists():
        return None
    return [row for _, row in read_jsonl(path)]


def per_problem_accuracy(samples: list[dict[str, Any]]) -> dict[str, float]:
    groups: dict[str, list[bool]] = {}
    for sample in decided(samples):  # undecided checks are left out, as in avg@n
        groups.setdefault(sample["id"], []).append(bool(sample["correct"]))
    return {pid: sum(c) / len(c) for pid, c in groups.items()}


def paired_difference(base: dict[str, Any], other: dict[str, Any], bench: str) -> dict[str, float] | None:
    """other - base accuracy on the problems both scored: the difference, its standard error,
    a paired bootstrap 95% interval and a paired permutation p-value (None without both
    samples files or with no problem in common)."""
    a, b = read_samples(base, bench), read_samples(other, bench)
    if a is None or b is None:
        return None
    acc_a, acc_b = per_problem_accuracy(a), per_problem_accuracy(b)
    common = [pid for pid in acc_a if pid in acc_b]
    if not common:
        return None
    return paired_test([acc_a[p] for p in common], [acc_b[p] for p in common])


def shared_benchmarks(results: list[dict[str, Any]]) -> list[str]:
    return [b for b in results[0]["benchmarks"] if all(b in r["benchmarks"] for r in results)]


def comparison_rows(results: list[dict[str, Any]], reference: int = 0) -> list[dict[str, Any]]:
    """One row per benchmark and model; differences and token reduction against
    ``results[reference]``."""
    base = results[reference]
    rows = []
    for bench in shared_benchmarks(results):
        ref = base["benchmarks"][bench]["mean_output_tokens"]
        for r in results:
            m = r["benchmarks"][bench]
            rows.append({"benchmark": bench, "model": r["label"], "accuracy": m["avg@n"],
                         "stderr": m["stderr"], "tokens": m["mean_output_tokens"],
                         "reasoning_tokens": m["mean_reasoning_tokens"],
                         "truncated": m.get("truncated_share"),
                         "undecided": m.get("undecided_checks", 0), "samples": m.get("samples", 0),
                         "reduction": (1 - m["mean_output_tokens"] / ref) if ref else 0.0,
                         "difference": None if r is base else paired_difference(base, r, bench)})
    if not rows:
        raise HinttuneError("the results share no benchmark")
    return rows


def all_pairs(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pair of models on every shared benchmark: second - first, paired over problems."""
    out = []
    for bench in shared_benchmarks(results):
        for i, first in enumerate(results):
            for second in results[i + 1:]:
                test = paired_difference(first, second, bench)
                if test is not None:
                    ref = first["benchmarks"][bench]["mean_output_tokens"]
                    tokens = second["benchmarks"][bench]["mean_output_tokens"]
                    out.append({"benchmark": bench, "first": first["label"], "second": second["label"], **test,
                                "token_reduction": (1 - tokens / ref) if ref else 0.0})
    return out


def _difference(test: dict[str, float]) -> str:
    return (f"{100 * test['difference']:+.1f} ± {100 * test['stderr']:.1f} "
            f"[{100 * test['low']:+.1f}, {100 * test['high']:+.1f}]")


def _p(value: float) -> str:
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


def comparison_table(rows: list[dict[str, Any]], baseline: str) -> Table:
    table = Table(title=f"accuracy and tokens (differences and reduction against {baseline})")
    table.caption = ("avg@n ± standard error across problems; Δ acc: paired over the problems both "
                     "scored, ± its standard error [bootstrap 95% CI], p: paired permutation test; "
                     "undecided checks are left out of every accuracy")
    for column in ("benchmark", "model", "avg@n", "Δ acc", "p", "undecided", "cut by length", "mean tokens",
                   "reasoning tokens", "token reduction"):
        table.add_column(column, justify="left" if column in ("benchmark", "model") else "right",
                         no_wrap=True)
    for r in rows:
        diff = r["difference"]
        own = r["model"] == baseline
        table.add_row(r["benchmark"], r["model"], f"{100 * r['accuracy']:.1f} ± {100 * r['stderr']:.1f}",
                      "reference" if own else "-" if diff is None else _difference(diff),
                      "" if own or diff is None else _p(diff["p_value"]),
                      f"{r['undecided']}/{r['samples']}" if r["samples"] else "-",
                      "-" if r["truncated"] is None else f"{100 * r['truncated']:.0f}%",
                      f"{r['tokens']:,.0f}", f"{r['reasoning_tokens']:,.0f}",
                      "reference" if own else f"{100 * r['reduction']:+.1f}%")
    by_bench: dict[str, list[float]] = {}
    for r in rows:
        if r["model"] != baseline:
            by_bench.setdefault(r["benchmark"], []).append(r["reduction"])
    if by_bench:
        table.caption += "\nmean token reduction: " + ", ".join(
            f"{b} {100 * sum(v) / len(v):.1f}%" for b, v in by_bench.items())
    return table


def pairs_table(pairs: list[dict[str, Any]]) -> Table:
    table = Table(title="every pair: second - first, paired over the problems both scored")
    for column in ("benchmark", "first", "second", "Δ acc", "p", "problems", "token reduction"):
        table.add_column(column, justify="left" if column in ("benchmark", "first", "second") else "right",
                         no_wrap=True)
    for p in pairs:
        table.add_row(p["benchmark"], p["first"], p["second"], _difference(p), _p(p["p_value"]),
                      str(p["problems"]), f"{100 * p['token_reduction']:+.1f}%")
    return table
