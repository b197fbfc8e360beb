"""The datasets built beside the Hint Tuning one from the same run: each further instruct
probe's, the combined one (``assemble.combine``), and the baselines (``assemble.baselines``),
with the statistics the summary compares them by."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from hinttune.construction.variants import first_correct
from hinttune.construction.variants.baselines import BaselineInputs, ThinkSample, build_baselines
from hinttune.construction.variants.combine import combine, rank
from hinttune.construction.outputs.export import export_dataset
from hinttune.construction.result import RunResult, attempt_missing, facts_of, probe_statistics, record_meta
from hinttune.construction.states import INCOMPLETE, Assignment
from hinttune.construction.outputs.summary import dataset_stats
from hinttune.core.chat import TokenCounter
from hinttune.core.config import RunConfig
from hinttune.core.grading import GradeItem, Grader
from hinttune.core.reasoning import split_think

log = logging.getLogger(__name__)


def think_samples(cfg: RunConfig, grader: Grader, result: RunResult) -> dict[str, list[ThinkSample]]:
    """Every think sample of every problem with its verdict (shortest-of-n), or why it has none."""
    by_id = {p.id: p for p in result.problems}
    items, samples = [], {}
    for (pid, sample), rec in sorted(result.attempts["think"].items(), key=lambda kv: kv[0][1]):
        if rec.status != "ok":
            samples.setdefault(pid, []).append(ThinkSample(missing=f"think sample {sample} {rec.failure}"))
            continue
        split = split_think(rec.text or "")
        samples.setdefault(pid, []).append(ThinkSample(rec.text or "", False if not split.closed else None))
        if split.closed:
            items.append((pid, len(samples[pid]) - 1, GradeItem(f"{rec.key}/{pid}", by_id[pid].problem,
                                                                 by_id[pid].gold_answer, split.answer)))
    verdicts = grader.grade([item for _, _, item in items], label="attempts:think samples")
    for pid, index, item in items:
        verdict = verdicts[item.key]
        samples[pid][index].correct = verdict.correct
        if verdict.correct is None:
            samples[pid][index].missing = f"grade of think sample {index} undecided ({verdict.detail[:120]})"
    for p in result.problems:  # a sample never generated is missing too
        got = len(samples.get(p.id, []))
        if got < cfg.attempts.samples:
            samples.setdefault(p.id, []).append(ThinkSample(missing=f"{cfg.attempts.samples - got} think samples not generated"))
    return samples


def export_probes(result: RunResult, cfg: RunConfig, run_dir: Path, count: TokenCounter,
                  meta: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each further probe's dataset in export/probes/NAME/ (and the combined one in
    export/combined/), and their side-by-side comparison for the summary."""
    first = next(iter(cfg.probe_models()))
    datasets = {first: (result.assignments, meta)}
    for name, other in result.others.items():
        other_meta = {a.problem_id: record_meta(a, other, count) for a in other.assignments}
        folder = run_dir / "export" / "probes" / name
        for kind, path in export_dataset(other.assignments, other_meta, folder, cfg.export).items():
            result.files[f"{name}:{kind}"] = path
        datasets[name] = (other.assignments, other_meta)
    compared = {name: {**policy_stats(a, m), "probing": probe_statistics(cfg.probe, r.probes)}
                for (name, (a, m)), r in zip(datasets.items(), [result, *result.others.values()])}
    out: dict[str, Any] = {"models": compared, "k_star_agreement": k_star_agreement(
        {name: a for name, (a, _) in datasets.items()})}
    if cfg.assemble.combine:
        merged, source = combine(cfg.assemble.combine, {name: a for name, (a, _) in datasets.items()})
        # each record's meta is its probe's (an incomplete problem has no probe: its state alone)
        merged_meta = {a.problem_id: {**datasets[source.get(a.problem_id, first)][1][a.problem_id],
                                      "state": a.state, "k_star": a.k_star,
                                      "probe": source.get(a.problem_id)} for a in merged}
        folder = run_dir / "export" / "combined"
        for kind, path in export_dataset(merged, merged_meta, folder, cfg.export).items():
            result.files[f"combined:{kind}"] = path
        out["combined"] = {"rule": cfg.assemble.combine, **policy_stats(merged, merged_meta),
                           "from": dict(Counter(source.values()))}
    return out


def k_star_agreement(by_probe: dict[str, list[Assignment]]) -> dict[str, Any]:
    """For each pair of probes: on how many problems both decided, how often they chose the same
    state and the same K* (No-Hint 0, no hint N)."""
    names, pairs = list(by_probe), {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = [(x, y) for x, y in zip(by_probe[a], by_probe[b])
                    if x.state != INCOMPLETE and y.state != INCOMPLETE]
            pairs[f"{a} vs {b}"] = {"problems": len(both),
                                    "same_state": sum(x.state == y.state for x, y in both),
                                    "same_k_star": sum(rank(x) == rank(y) for x, y in both)}
    return pairs


def export_baselines(result: RunResult, cfg: RunConfig, run_dir: Path,
                     count: TokenCounter) -> dict[str, tuple[list[Assignment], dict[str, dict[str, Any]]]]:
    """The baselines' datasets, each in export/baselines/NAME/ with its meta sidecar; the
    folders of baselines no longer asked for are removed (stale data beside fresh data would
    be compared and trained on as if current)."""
    remove_stale(run_dir / "export" / "baselines", set(cfg.assemble.baselines))
    if not cfg.assemble.baselines:
        return {}
    facts = [facts_of(result, p) for p in result.problems]
    inputs = BaselineInputs(facts, result.assignments, cfg.seed, result.think_samples, count=count)
    if "first-correct" in cfg.assemble.baselines:
        inputs.first_correct = first_correct.assignments(
            result.problems, result.episodes, result.self_probes,
            {p.id: attempt_missing(result, "think", p.id) for p in result.problems})
    built = {}
    for name, assignments in build_baselines(cfg.assemble.baselines, inputs).items():
        meta = {a.problem_id: record_meta(a, result, count) for a in assignments}
        folder = run_dir / "export" / "baselines" / name
        for kind, path in export_dataset(assignments, meta, folder, cfg.export.model_copy(
                update={"dataset_name": name})).items():
            result.files[f"{name}:{kind}"] = path
        built[name] = (assignments, meta)
        result.baselines[name] = assignments
    return built


def remove_stale(folder: Path, wanted: set[str]) -> None:
    import shutil

    if folder.is_dir():
        for child in folder.iterdir():
            if child.is_dir() and child.name not in wanted:
                log.info("removing %s: that baseline is no longer configured", child)
                shutil.rmtree(child)


def policy_stats(assignments: list[Assignment], meta: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Records, state mix, mean target tokens and the share of the think trace kept."""
    return dataset_stats([meta[a.problem_id] for a in assignments if a.exported])
