"""Tables for people: what a stage produced, and how far a run has got."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from statistics import mean
from typing import Any

from rich.table import Table

from hinttune.core.reasoning import split_think
from hinttune.core.store import GenerationRecord, PlanStatus


def attempts_table(results: dict[str, dict[tuple[str, int], GenerationRecord]]) -> Table:
    table = Table(title="attempts")
    for column in ("model", "answers", "failed", "cut by length", "with </think>", "mean tokens"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for role, records in results.items():
        ok = [r for r in records.values() if r.status == "ok"]
        closed = sum(split_think(r.text or "").closed for r in ok)
        tokens = [r.completion_tokens for r in ok if r.completion_tokens is not None]
        table.add_row(role, str(len(ok)), str(len(records) - len(ok)),
                      str(sum(r.truncated for r in ok)), str(closed),
                      f"{mean(tokens):.0f}" if tokens else "-")
    return table


def verdicts_table(verdicts: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="grades")
    for column in ("model", "correct", "wrong", "undecided", "by math", "by judge"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for role, by_id in verdicts.items():
        v = list(by_id.values())
        table.add_row(role, str(sum(x.correct is True for x in v)), str(sum(x.correct is False for x in v)),
                      str(sum(x.correct is None for x in v)), str(sum(x.grader == "math" for x in v)),
                      str(sum(x.grader == "judge" for x in v)))
    return table


def stage_report(result: Any) -> list[Any]:
    """What to show after a stage: the furthest stage's own table, and the files written."""
    from hinttune.construction.outputs.summary import summary_table

    files = "\n".join(f"  {path}" for path in result.files.values())
    if result.summary is not None:
        tables = [summary_table(result.summary)]
        if "probes" in result.summary:
            from hinttune.construction.outputs.probe_comparison import probes_table

            tables.append(probes_table(result.summary))
        if "grading_audit" in result.summary:
            from hinttune.construction.audit import describe

            tables.append(describe(result.summary["grading_audit"]))
        return [*tables, *result.notes, f"written:\n{files}"]
    if result.assignments:
        states = Counter(a.state for a in result.assignments)
        line = ", ".join(f"{state}: {n}" for state, n in states.items())
        if result.files:  # the records by state; the problems left out apart from them
            kept = Counter(a.state for a in result.assignments if a.exported)
            left = Counter(a.state for a in result.assignments if not a.exported)
            records = ", ".join(f"{state}: {n}" for state, n in kept.items())
            out = f"{sum(kept.values())} records ({records})"
            if left:
                out += "; not exported: " + ", ".join(f"{state} {n}" for state, n in left.items())
            return [out, f"written:\n{files}"]
        return [f"assembled {len(result.assignments)} problems: {line} "
                "(computed from the run store; `hinttune export` writes the dataset)"]
    if result.probes:
        solved = sum(o.k_star is not None for o in result.probes.values())
        attempts = sum(len(o.attempts) for o in result.probes.values())
        return [f"probed {len(result.probes)} problems: {solved} solved with a hint, "
                f"{attempts} continuations"]
    if result.episodes:
        sizes = sorted(len(e) for e in result.episodes.values())
        return [f"segmented {len(sizes)} traces: episodes min {sizes[0]}, median "
                f"{sizes[len(sizes) // 2]}, max {sizes[-1]}"]
    if result.verdicts:
        return [verdicts_table(result.verdicts)]
    return [attempts_table(result.attempts)]


def status_table(rows: list[PlanStatus]) -> Table:
    table = Table(title="run status")
    for column in ("stage", "model", "done", "planned", "failed", "cut by length", "tokens"):
        table.add_column(column, justify="left" if column in ("stage", "model") else "right")
    for r in sorted(rows, key=_pipeline_order):  # the order the stages run in, not the order planned
        pct = f" ({100 * r.ok / r.planned:.0f}%)" if r.planned else ""
        role = f"{r.role} ({r.imported:,} imported)" if r.imported else r.role
        table.add_row(r.stage, role, f"{r.ok}{pct}", str(r.planned), str(r.failed),
                      str(r.truncated), f"{r.completion_tokens:,}")
    if not rows:
        table.caption = "nothing planned yet"
    return table


STAGE_ORDER = ("attempts", "grade", "probe", "judge", "audit")
ROLE_ORDER = ("think", "instruct", "judge")


def _pipeline_order(row: PlanStatus) -> tuple[int, int]:
    stage = next((i for i, s in enumerate(STAGE_ORDER) if row.stage.startswith(s)), len(STAGE_ORDER))
    role = next((i for i, r in enumerate(ROLE_ORDER) if row.role.startswith(r)), len(ROLE_ORDER))
    return stage, role


def plan_table(plan: dict[str, Any]) -> Table:
    table = Table(title=f"plan: {plan['problems']} problems, probe strategy {plan['strategy']}, "
                  f"{plan['throughput']:,.0f} tok/s generated, {plan['prefill_throughput']:,.0f} "
                  "tok/s prefill")
    for column in ("stage", "generations", "tokens", "prompt tokens", "engine rounds", "hours"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, stage in plan["stages"].items():
        table.add_row(name, f"{stage['generations']:,.0f}", f"{stage['tokens']:,.0f}",
                      f"{stage['prompt_tokens']:,.0f}", str(stage["rounds"]), f"{stage['hours']:.2f}")
    stages = plan["stages"].values()
    table.add_section()
    table.add_row("total", f"{sum(s['generations'] for s in stages):,.0f}", f"{sum(s['tokens'] for s in stages):,.0f}",
                  f"{sum(s['prompt_tokens'] for s in stages):,.0f}", "", f"{sum(s['hours'] for s in stages):.2f}")
    table.caption = (f"{plan['episodes']}; mean N = {plan['mean_episodes']:.1f}; grader "
                     f"{plan['grader']}")
    return table


def shards_table(run_dirs: list[Path]) -> Table:
    """Progress of several runs side by side (the shards of one, or a merge and its shards):
    per stage, generations done of planned; failed; records exported."""
    import json

    from hinttune.core.store import RunStore

    rows, stages = [], []
    for run_dir in run_dirs:
        with RunStore(run_dir, readonly=True) as store:
            status = store.status()
        per_stage: dict[str, list[int]] = {}
        for r in status:
            done = per_stage.setdefault(r.stage, [0, 0])
            done[0], done[1] = done[0] + r.ok, done[1] + r.planned
            if r.stage not in stages:
                stages.append(r.stage)
        problems = run_dir / "problems.jsonl"
        count = sum(1 for _ in problems.open(encoding="utf-8")) if problems.exists() else 0
        summary = run_dir / "summary.json"
        exported = json.loads(summary.read_text(encoding="utf-8")).get("records") if summary.exists() else None
        rows.append((run_dir, count, per_stage, sum(r.failed for r in status), exported))
    common = Path(os.path.commonpath([str(d.resolve()) for d in run_dirs]))
    table = Table(title=f"runs in {common}")
    for column in ("run", "problems", *stages, "failed", "records"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for run_dir, count, per_stage, failed, exported in rows:
        cells = []
        for stage in stages:
            done, planned = per_stage.get(stage, (0, 0))
            cells.append(f"{done}/{planned}" + (f" ({100 * done / planned:.0f}%)" if planned else ""))
        name = str(run_dir.resolve().relative_to(common)) if run_dir.resolve() != common else "."
        table.add_row(name, str(count), *cells, str(failed), "-" if exported is None else str(exported))
    return table
