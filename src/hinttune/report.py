"""Tables for people: what a stage produced, and how far a run has got."""

from __future__ import annotations

from statistics import mean

from rich.table import Table

from hinttune.reasoning import split_think
from hinttune.store import GenerationRecord, PlanStatus


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


def status_table(rows: list[PlanStatus]) -> Table:
    table = Table(title="run status")
    for column in ("stage", "model", "done", "planned", "failed", "cut by length", "tokens"):
        table.add_column(column, justify="left" if column in ("stage", "model") else "right")
    for r in rows:
        pct = f" ({100 * r.ok / r.planned:.0f}%)" if r.planned else ""
        table.add_row(r.stage, r.role, f"{r.ok}{pct}", str(r.planned), str(r.failed),
                      str(r.truncated), f"{r.completion_tokens:,}")
    if not rows:
        table.caption = "nothing planned yet"
    return table
