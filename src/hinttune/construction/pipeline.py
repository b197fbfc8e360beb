"""``hinttune run``: problems → attempts → grades → segments → probes → states → exports →
summary, in order, each stage resuming from what the run store already holds."""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hinttune.construction import first_correct, probe_memo
from hinttune.construction.attempts import run_attempts
from hinttune.construction.baselines import BaselineInputs, ThinkSample, build_baselines
from hinttune.construction.combine import combine, rank
from hinttune.construction.export import export_dataset, export_official_layout
from hinttune.construction.planning import read_plan
from hinttune.construction.probing import ProbeOutcome, ProbeTarget, run_probes
from hinttune.construction.segmentation import trace_episodes
from hinttune.construction.states import INCOMPLETE, Assignment, ProblemFacts, assign
from hinttune.construction.summary import dataset_stats, summarize, write_summary
from hinttune.core.backends import BackendPool
from hinttune.core.chat import TokenCounter
from hinttune.core.config import AssembleConfig, ExportConfig, ProbeConfig, RunConfig
from hinttune.core.files import write_jsonl
from hinttune.core.grading import UNGRADED, GradeItem, Grader, Verdict, judge_model
from hinttune.core.problems import Problem
from hinttune.core.reasoning import split_think
from hinttune.core.rundir import open_run

log = logging.getLogger(__name__)
STAGES = ("attempts", "grade", "segment", "probe", "assemble", "export", "summary")


@dataclass
class RunResult:
    problems: list[Problem]
    attempts: dict[str, dict[tuple[str, int], Any]]
    verdicts: dict[str, dict[str, Verdict]] = field(default_factory=dict)
    episodes: dict[str, list[str]] = field(default_factory=dict)
    probes: dict[str, ProbeOutcome] = field(default_factory=dict)
    assignments: list[Assignment] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    # further instruct probes (instruct: [a, b, ...]): each one's result, by name
    others: dict[str, "RunResult"] = field(default_factory=dict)
    # what some baselines need beyond Hint Tuning's own inputs
    think_samples: dict[str, list[ThinkSample]] = field(default_factory=dict)
    self_probes: dict[str, ProbeOutcome] = field(default_factory=dict)


def _grade_attempts(cfg: RunConfig, grader: Grader, result: RunResult,
                    roles: tuple[str, ...] = ("think", "instruct")) -> None:
    """Verdicts on sample 0 of each model's attempt (the one the states are built from)."""
    by_id = {p.id: p for p in result.problems}
    for role in roles:
        items, verdicts = [], {}
        for (pid, sample), rec in result.attempts[role].items():
            if sample != 0 or rec.status != "ok":
                continue
            text = rec.text or ""
            if role == "think" and not cfg.official:  # the official scripts grade the whole response
                split = split_think(text)
                if not split.closed:  # cut before </think>: there is no answer to grade
                    verdicts[pid] = Verdict(False, "no answer", "the reasoning never closed")
                    continue
                text = split.answer
            # keyed by generation and problem: twin problems can share one generation
            items.append(GradeItem(f"{rec.key}/{pid}", by_id[pid].problem, by_id[pid].gold_answer, text))
        graded = grader.grade(items, label=f"attempts:{role}")
        verdicts.update({key.rsplit("/", 1)[1]: v for key, v in graded.items()})
        result.verdicts[role] = verdicts


def _targets(cfg: RunConfig, result: RunResult) -> list[ProbeTarget]:
    targets = []
    for p in result.problems:
        eps = result.episodes.get(p.id)
        if eps is None:
            continue
        if cfg.official:  # the official scripts probe the think model's failures, k = 0..N
            if result.verdicts["think"].get(p.id, UNGRADED).correct is not False:
                continue
            targets.append(ProbeTarget(p, eps, 0, len(eps)))
        else:  # the paper: problems the instruct model could not solve; K* = 0 is the attempt
            instruct = result.verdicts["instruct"].get(p.id)
            if instruct is None or instruct.correct is not False or len(eps) < 2:
                continue  # solved, or undecided (the problem is incomplete, not probed)
            targets.append(ProbeTarget(p, eps, 1, len(eps) - 1))
    return targets


def probe(cfg: RunConfig, store: Any, grader: Grader, pool: BackendPool,
          targets: list[ProbeTarget], role: str = "instruct") -> dict[str, ProbeOutcome]:
    """Stage 4: searches finished by an earlier run with the same inputs are taken as they
    are (``probe_memo``); the others run, and those that finish are remembered."""
    common = {"instruct": pool.get(cfg.instruct).identity(), "model": cfg.instruct.model_dump(mode="json"),
              "probe": cfg.probe.model_dump(mode="json"), "grading": grader.settings,
              "seed": cfg.seed, "official": cfg.official}
    prints = probe_memo.fingerprints(common, targets)
    known = probe_memo.recall(store, prints, role)
    if known:
        log.info("probe (%s): %d of %d searches finished in an earlier run", role, len(known), len(targets))
    fresh = run_probes(cfg, store, grader, pool, [t for t in targets if t.problem.id not in known], role)
    probe_memo.remember(store, prints, fresh, role)
    return {t.problem.id: known.get(t.problem.id) or fresh[t.problem.id] for t in targets}


def _think_samples(cfg: RunConfig, grader: Grader, result: RunResult) -> dict[str, list[ThinkSample]]:
    """Every think sample of every problem with its verdict (shortest-of-n), or why it has none."""
    by_id = {p.id: p for p in result.problems}
    items, samples = [], {}
    for (pid, sample), rec in sorted(result.attempts["think"].items(), key=lambda kv: kv[0][1]):
        if rec.status != "ok":
            samples.setdefault(pid, []).append(ThinkSample(missing=f"think sample {sample} failed: {rec.error}"))
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


def _text(result: RunResult, role: str, pid: str) -> str:
    rec = result.attempts[role].get((pid, 0))
    return (rec.text or "") if rec is not None and rec.status == "ok" else ""


def _missing(result: RunResult, role: str, pid: str) -> str | None:
    """Why a model's attempt is not there to build from (None: it is)."""
    rec = result.attempts[role].get((pid, 0))
    if rec is None:
        return f"{role} attempt not generated"
    if rec.status != "ok":
        return f"{role} attempt failed: {rec.error or 'no reason given'}"
    return None


def _undecided(result: RunResult, role: str, pid: str) -> str | None:
    verdict = result.verdicts.get(role, {}).get(pid)
    if verdict is None:
        return f"{role} answer not graded"
    if verdict.correct is None:
        return f"grade of the {role} answer undecided ({verdict.grader}: {verdict.detail[:120]})"
    return None


def facts_of(result: RunResult, p: Problem) -> ProblemFacts:
    think_v = result.verdicts["think"].get(p.id, UNGRADED)
    instruct_v = result.verdicts["instruct"].get(p.id, UNGRADED)
    return ProblemFacts(p.id, p.problem, _text(result, "think", p.id), think_v.correct,
                        _text(result, "instruct", p.id), instruct_v.correct,
                        result.episodes.get(p.id, []), result.probes.get(p.id),
                        think_missing=_missing(result, "think", p.id),
                        instruct_missing=_missing(result, "instruct", p.id),
                        think_undecided=_undecided(result, "think", p.id),
                        instruct_undecided=_undecided(result, "instruct", p.id))


def failure_causes(result: RunResult) -> Counter:
    """Incomplete problems by cause (a cause's first clause, without per-request detail)."""
    causes: Counter = Counter()
    if result.assignments:
        for a in result.assignments:
            if a.state == INCOMPLETE:
                causes[_cause(a.note)] += 1
        for name, other in result.others.items():  # a further probe's failures fail the run too
            causes.update({f"probe {name}: {cause}": n for cause, n in failure_causes(other).items()})
        return causes
    for role, records in result.attempts.items():
        for rec in records.values():
            if rec.status != "ok":
                causes[_cause(f"{role} attempt failed: {rec.error or ''}")] += 1
    return causes


def _cause(note: str) -> str:
    note = note.replace(" (re-run to retry)", "")
    head, _, rest = note.partition(": ")
    detail = re.sub(r"\bk=\d+", "k", head)  # one cause for every k
    if rest:
        # "HTTP 500 from URL: message" -> "HTTP 500 from URL"; long texts cut
        detail += ": " + rest.split(": ")[0][:100]
    return detail


def _meta(a: Assignment, result: RunResult, count: TokenCounter) -> dict[str, Any]:
    think = split_think(_text(result, "think", a.problem_id))
    probe = result.probes.get(a.problem_id)
    return {"id": a.problem_id, "state": a.state, "k_star": a.k_star, "n": a.n,
            "verified": a.verified,
            "trace_tokens": count(think.reasoning), "hint_tokens": count(a.hint),
            "answer_tokens": count(a.answer), "output_tokens": count(a.output),
            "token_unit": count.unit,
            "grader_think": result.verdicts["think"].get(a.problem_id, UNGRADED).grader,
            "grader_instruct": result.verdicts["instruct"].get(a.problem_id, UNGRADED).grader,
            "probe_attempts": len(probe.attempts) if probe else 0}


def probe_statistics(probe: ProbeConfig, probes: dict[str, ProbeOutcome]) -> dict[str, Any]:
    outcomes = list(probes.values())
    stats = {"strategy": probe.strategy, "problems": len(outcomes),
             "generations": sum(len(o.attempts) for o in outcomes),
             "tokens": sum(a.completion_tokens or 0 for o in outcomes for a in o.attempts),
             "rounds": max((o.rounds for o in outcomes), default=0),
             "solved": sum(o.k_star is not None for o in outcomes)}
    # generations a one-k-at-a-time linear search would not have asked (look-ahead past K*)
    stats["beyond_linear"] = sum(a.k > o.k_star for o in outcomes if o.k_star is not None
                                 for a in o.attempts) + sum(o.ahead for o in outcomes)
    stats["schedule"] = probe.schedule
    if probe.samples_per_prefix > 1:  # what the success rule changed against one sample
        stats["k_star_changed_by_rule"] = sum(o.k_star != o.single_sample_k_star for o in outcomes)
    return stats


def assemble(result: RunResult, rules: AssembleConfig, seed: int) -> None:
    """Stage 5: a state (or the reason there is none) for every problem."""
    result.assignments = [assign(facts_of(result, p), rules.policy, rules.keep_unverified, seed)
                          for p in result.problems]


def export(result: RunResult, export_cfg: ExportConfig, run_dir: Path,
           count: TokenCounter) -> dict[str, dict[str, Any]]:
    """Stage 6: the dataset files; returns each record's meta row."""
    meta = {a.problem_id: _meta(a, result, count) for a in result.assignments}
    result.files = export_dataset(result.assignments, meta, run_dir / "export", export_cfg)
    return meta


def summary(result: RunResult, meta: dict[str, dict[str, Any]], probe_stats: dict[str, Any],
            run_dir: Path, extra: dict[str, Any] | None = None) -> None:
    """Stage 7: every outcome with counts, printed, written and plotted."""
    graders = Counter(v.grader for role in result.verdicts.values() for v in role.values())
    graders.update(a.verdict.grader for o in result.probes.values() for a in o.attempts)
    result.summary = {**summarize(result.assignments, meta, graders, probe_stats), **(extra or {})}
    for path in write_summary(result.summary, list(meta.values()), run_dir):
        result.files["plot" if path.name == "summary.png" else path.stem] = path


def probe_runs(cfg: RunConfig) -> dict[str, tuple[str, RunConfig]]:
    """(role, config) of each instruct probe by name: the first is role ``instruct`` with the
    run's config; each further one has its own role and a config whose instruct model is that
    probe, with the first one's judge, so every grade is the same whichever probe asks."""
    named = cfg.probe_models()
    first = next(iter(named))
    fixed = cfg.grading.model_copy(update={"judge": cfg.grading.judge or judge_model(cfg)})
    return {name: ("instruct", cfg) if name == first else
            (f"instruct:{name}", cfg.model_copy(update={"instruct": model, "probes": [], "grading": fixed}))
            for name, model in named.items()}


def build(cfg: RunConfig, until: str = "summary") -> RunResult:
    """Run the construction up to and including stage ``until``."""
    stop = STAGES.index(until)
    store, loaded = open_run(cfg)
    run_dir = Path(cfg.run_dir)
    counter = TokenCounter(cfg.think)  # think-model tokens: windows and token counts
    runs = probe_runs(cfg)
    with store, BackendPool() as pool:
        roles = {"think": cfg.think, **{role: c.instruct for role, c in runs.values()}}
        attempts = run_attempts(cfg, store, loaded.problems, pool, roles)
        results = {name: RunResult(loaded.problems, {"think": attempts["think"], "instruct": attempts[role]})
                   for name, (role, _) in runs.items()}
        result = next(iter(results.values()))
        result.others = {name: r for name, r in results.items() if r is not result}
        if stop < 1:
            return result
        grader = Grader(cfg, store, pool)
        try:
            _grade_attempts(cfg, grader, result)  # the think attempt is graded once, for all
            for other in result.others.values():
                other.verdicts["think"] = result.verdicts["think"]
                _grade_attempts(cfg, grader, other, roles=("instruct",))
            if stop < 2:
                return result
            for p in result.problems:
                text = _text(result, "think", p.id)
                if text:
                    result.episodes[p.id] = trace_episodes(text, cfg.segment, cfg.official,
                                                           counter.tokenizer)
            write_jsonl(run_dir / "segments.jsonl", ({"id": pid, "n": len(eps), "episodes": eps}
                                                      for pid, eps in result.episodes.items()))
            if stop < 3:
                return result
            for name, (role, probe_cfg) in runs.items():
                results[name].episodes = result.episodes
                results[name].probes = probe(probe_cfg, store, grader, pool,
                                             _targets(probe_cfg, results[name]), role)
            if "shortest-of-n" in cfg.assemble.baselines:
                result.think_samples = _think_samples(cfg, grader, result)
            if "first-correct" in cfg.assemble.baselines:
                result.self_probes = probe(first_correct.self_probe_config(cfg), store, grader, pool,
                                           first_correct.targets(cfg, result.problems, result.episodes),
                                           first_correct.ROLE)
        finally:
            grader.close()
    if stop < 4:
        return result
    for r in results.values():
        assemble(r, cfg.assemble, cfg.seed)
    if stop < 5:
        return result
    meta = export(result, cfg.export, run_dir, counter)
    extra: dict[str, Any] = {}
    if result.others:
        extra["probes"] = export_probes(result, cfg, run_dir, counter, meta)
    baselines = export_baselines(result, cfg, run_dir, counter)
    if cfg.export.official_layout:
        result.files.update(export_official_layout(result, cfg, run_dir / "export" / "official"))
    if stop < 6:
        return result
    probe_stats = probe_statistics(cfg.probe, result.probes)
    plan = read_plan(run_dir)
    if plan is not None:  # `hinttune plan` ran: show the estimate beside the actual figures
        probe_stats["estimate"] = {k: plan["stages"]["probe"][k] for k in ("generations", "tokens", "rounds")}
        probe_stats["estimate"]["strategy"] = plan["strategy"]
    if baselines:
        extra["baselines"] = {"hint-tuning": policy_stats(result.assignments, meta),
                              **{name: policy_stats(a, m) for name, (a, m) in baselines.items()}}
    summary(result, meta, probe_stats, run_dir, extra)
    return result


def export_probes(result: RunResult, cfg: RunConfig, run_dir: Path, count: TokenCounter,
                  meta: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each further probe's dataset in export/probes/NAME/ (and the combined one in
    export/combined/), and their side-by-side comparison for the summary."""
    first = next(iter(cfg.probe_models()))
    datasets = {first: (result.assignments, meta)}
    for name, other in result.others.items():
        other_meta = {a.problem_id: _meta(a, other, count) for a in other.assignments}
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
        merged_meta = {a.problem_id: {**datasets[source.get(a.problem_id, first)][1][a.problem_id],
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
    """The baselines' datasets, each in export/baselines/NAME/ with its meta sidecar."""
    if not cfg.assemble.baselines:
        return {}
    facts = [facts_of(result, p) for p in result.problems]
    inputs = BaselineInputs(facts, result.assignments, cfg.seed, result.think_samples, count=count)
    if "first-correct" in cfg.assemble.baselines:
        inputs.first_correct = first_correct.assignments(
            result.problems, result.episodes, result.self_probes,
            {p.id: _missing(result, "think", p.id) for p in result.problems})
    built = {}
    for name, assignments in build_baselines(cfg.assemble.baselines, inputs).items():
        meta = {a.problem_id: _meta(a, result, count) for a in assignments}
        folder = run_dir / "export" / "baselines" / name
        for kind, path in export_dataset(assignments, meta, folder, cfg.export.model_copy(
                update={"dataset_name": name})).items():
            result.files[f"{name}:{kind}"] = path
        built[name] = (assignments, meta)
    return built


def policy_stats(assignments: list[Assignment], meta: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Records, state mix, mean target tokens and the share of the think trace kept."""
    return dataset_stats([meta[a.problem_id] for a in assignments if a.exported])
