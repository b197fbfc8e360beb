"""``hinttune run``: problems → attempts → grades → segments → probes (one pipeline per
problem, ``per_problem.py``) → dataset variants → states → exports → summary, each step
resuming from what the run store already holds."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from hinttune.construction.probe import memo as probe_memo
from hinttune.construction.variants import first_correct
from hinttune.construction.audit import run_audit
from hinttune.construction.outputs.export import export_dataset, export_official_layout
from hinttune.construction.scale.planning import read_plan
from hinttune.construction.policy import Policy
from hinttune.construction.probe.search import ProbeOutcome, ProbeSetup, ProbeTarget, run_probes
from hinttune.construction.result import RunResult, facts_of, probe_statistics, record_meta
from hinttune.construction.per_problem import PerProblem, Settings, Side
from hinttune.construction.states import assign
from hinttune.construction.outputs.summary import summarize, write_summary
from hinttune.construction.variants.exports import export_baselines, export_probes, policy_stats, think_samples
from hinttune.core.backends import BackendPool
from hinttune.core.chat import TokenCounter
from hinttune.core.config import AssembleConfig, ExportConfig, RunConfig
from hinttune.core.files import write_jsonl
from hinttune.core.grading import GradeItem, Grader
from hinttune.core.store.rundir import open_run
from hinttune.core.secrets import MASKED_COUNTER

log = logging.getLogger(__name__)
STAGES = ("attempts", "grade", "segment", "probe", "assemble", "export", "summary")


def probe(cfg: RunConfig, store: Any, grader: Grader, pool: BackendPool,
          targets: list[ProbeTarget], role: str) -> dict[str, ProbeOutcome]:
    """A dataset variant's searches (the first-correct self-probe): those finished by an
    earlier run with the same inputs are taken as they are (``probe_memo``); the others run,
    and those that finish are remembered."""
    setup = ProbeSetup.of(cfg, pool, grader)
    memo = probe_memo.Memo(store, role, probe_memo.common(setup, grader))
    known = {t.problem.id: found for t in targets if (found := memo.recall(t)) is not None}
    if known:
        log.info("probe (%s): %d of %d searches finished in an earlier run", role, len(known), len(targets))
    fresh = run_probes(setup, store, grader, [t for t in targets if t.problem.id not in known], role)
    for t in targets:
        if t.problem.id in fresh:
            memo.remember(t, fresh[t.problem.id])
    return {t.problem.id: known.get(t.problem.id) or fresh[t.problem.id] for t in targets}


def assemble(result: RunResult, rules: AssembleConfig, seed: int) -> None:
    """Stage 5: a state (or the reason there is none) for every problem."""
    result.assignments = [assign(facts_of(result, p), rules.policy, rules.keep_unverified, seed)
                          for p in result.problems]


def export(result: RunResult, export_cfg: ExportConfig, run_dir: Path,
           count: TokenCounter) -> dict[str, dict[str, Any]]:
    """Stage 6: the dataset files; returns each record's meta row."""
    meta = {a.problem_id: record_meta(a, result, count) for a in result.assignments}
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
    probe. With no judge configured each probe judges its own answers, as in the paper's runs
    of several probes (and no engine is swapped in for another probe's judge calls)."""
    named = cfg.probe_models()
    first = next(iter(named))
    return {name: ("instruct", cfg) if name == first else
            (f"instruct:{name}", cfg.model_copy(update={"instruct": model, "probes": []}))
            for name, model in named.items()}


def in_problem_order(result: RunResult) -> None:
    """What the per-problem pipeline recorded as it completed, in the problems' order (the
    same results give the same files, whatever order they came back in): think grades before
    instruct grades, as the audit samples them."""
    order = {p.id: i for i, p in enumerate(result.problems)}
    for role, records in result.attempts.items():
        result.attempts[role] = dict(sorted(records.items(), key=lambda kv: (kv[0][1], order[kv[0][0]])))
    for role, verdicts in result.verdicts.items():
        result.verdicts[role] = dict(sorted(verdicts.items(), key=lambda kv: order[kv[0]]))
    episodes = sorted(result.episodes.items(), key=lambda kv: order[kv[0]])
    result.episodes.clear()  # shared by every instruct model's result
    result.episodes.update(episodes)
    result.probes = dict(sorted(result.probes.items(), key=lambda kv: order[kv[0]]))
    think = {f"{rec.key}/{pid}" for (pid, _), rec in result.attempts["think"].items()}
    result.graded.sort(key=lambda pair: (pair[1].key not in think, order[pair[0]]))


def _probe_items(cfg: RunConfig, result: RunResult) -> list[tuple[str, GradeItem]]:
    by_id, policy = {p.id: p for p in result.problems}, Policy.of(cfg)
    return [(pid, GradeItem(f"{a.key}/{pid}", by_id[pid].problem, by_id[pid].gold_answer,
                            policy.continuation_answer(a.text)))
            for pid, outcome in result.probes.items() for a in outcome.attempts]


def build(cfg: RunConfig, until: str = "summary", frozen: str | None = None) -> RunResult:
    """Run the construction up to and including stage ``until``; with ``frozen``, from the
    store alone (a merge of shards): every request that is not there fails with that reason."""
    stop = STAGES.index(until)
    store, loaded = open_run(cfg)
    run_dir = Path(cfg.run_dir)
    counter = TokenCounter(cfg.think)  # think-model tokens: windows and token counts
    runs = probe_runs(cfg)
    problems = loaded.problems
    with store, BackendPool(frozen) as pool:
        grader = Grader(cfg, store, pool)
        graders = {name: grader if role == "instruct" else Grader(probe_cfg, store, pool, lender=grader)
                   for name, (role, probe_cfg) in runs.items()}
        result = RunResult(problems, {"think": {}, "instruct": {}}, {"think": {}, "instruct": {}})
        results = {name: result if role == "instruct" else
                   RunResult(problems, {"think": result.attempts["think"], "instruct": {}},
                             {"think": result.verdicts["think"], "instruct": {}}, result.episodes)
                   for name, (role, _) in runs.items()}
        result.others = {name: r for name, r in results.items() if r is not result}
        try:
            sides = [Side(name, role, ProbeSetup.of(probe_cfg, pool, graders[name]), graders[name], results[name])
                     for name, (role, probe_cfg) in runs.items()]
            PerProblem(Settings.of(cfg), pool.model(cfg.think), sides, store, min(stop, 3),
                       counter.tokenizer).run(problems)
            for r in results.values():
                in_problem_order(r)
            if stop < 2:
                return result
            write_jsonl(run_dir / "segments.jsonl", ({"id": pid, "n": len(eps), "episodes": eps}
                                                      for pid, eps in result.episodes.items()))
            if stop < 3:
                return result
            if "shortest-of-n" in cfg.assemble.baselines:
                result.think_samples = think_samples(cfg, grader, result)
            if "first-correct" in cfg.assemble.baselines:
                result.self_probes = probe(first_correct.self_probe_config(cfg), store, grader, pool,
                                           first_correct.targets(cfg, result.problems, result.episodes),
                                           first_correct.ROLE)
            if cfg.grading.audit:
                result.audit = run_audit(cfg, store, pool, grader, result.graded + _probe_items(cfg, result), run_dir)
                result.files["grading_audit"] = run_dir / "grading_audit.jsonl"
        finally:
            for each in graders.values():
                each.close()
        masked = store.counts().get(MASKED_COUNTER, 0)
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
    if result.audit is not None:
        extra["grading_audit"] = result.audit
    extra["replies_with_a_key_masked"] = masked
    if masked:
        result.notes.append(f"{masked} model repl{'y' if masked == 1 else 'ies'} held a registered API key "
                            "(a server or proxy echoing it): masked before anything was stored")
    if loaded.contamination is not None:
        extra["contamination"] = loaded.contamination
        c = loaded.contamination
        if c["benchmarks"]:
            result.notes.append(f"decontamination ({c['ngram']}-grams against {', '.join(c['benchmarks'])}): "
                                f"{c['problems_matched']} problem(s) overlap a benchmark problem, "
                                f"{'dropped' if c['action'] == 'drop' else 'kept'}; see {c['file']}")
        if c.get("unchecked"):
            result.notes.append(f"decontamination: not checked against {', '.join(c['unchecked'])} (no hub "
                                "access; problems.benchmarks takes local files as NAME=PATH)")
    summary(result, meta, probe_stats, run_dir, extra)
    return result


