"""Stage 6, export: the dataset in the formats trainers read.

- ``hint_tuning.json``: Alpaca records exactly as released (instruction, input, output);
- ``hint_tuning.messages.jsonl``: the same as chat ``messages`` (TRL, most SFT stacks);
- ``dataset_info.json``: the LLaMA-Factory entry (prompt→instruction, query→input,
  response→output);
- ``hint_tuning.meta.jsonl``: per record: problem id, state, K*, N, token counts, graders;
- ``excluded.jsonl``: problems with no exported target, and why;
- ``hf/``: a ``datasets`` save_to_disk folder (with ``export.formats`` containing ``hf``);
- ``official/``: with ``export.official_layout``, the official scripts' intermediate files.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hinttune.construction.states import Assignment, alpaca_record
from hinttune.core.config import ExportConfig
from hinttune.core.errors import missing_extra
from hinttune.core.files import atomic_dir, write_json, write_jsonl
from hinttune.core.fingerprint import record_digest


def _remove_stale(out_dir: Path, name: str, formats: list[str]) -> None:
    """Files of formats no longer selected would be read as current: remove them."""
    stale = {"alpaca": [out_dir / f"{name}.json", out_dir / "dataset_info.json"],
             "messages": [out_dir / f"{name}.messages.jsonl"], "hf": [out_dir / "hf"]}
    for fmt, paths in stale.items():
        if fmt in formats:
            continue
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def export_dataset(assignments: list[Assignment], meta: dict[str, dict[str, Any]],
                   out_dir: Path, cfg: ExportConfig) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = [a for a in assignments if a.exported]
    records = [alpaca_record(a.problem, a.thinking, a.answer) for a in kept]
    name = cfg.dataset_name
    files: dict[str, Path] = {}
    _remove_stale(out_dir, name, list(cfg.formats))
    if "alpaca" in cfg.formats:
        # byte for byte what the official merge.py writes (no newline at the end)
        files["alpaca"] = write_json(out_dir / f"{name}.json", records, final_newline=False)
        files["dataset_info"] = write_json(out_dir / "dataset_info.json", {name: {
            "file_name": f"{name}.json",
            "columns": {"prompt": "instruction", "query": "input", "response": "output"}}})
    messages = [{"messages": [{"role": "user", "content": r["instruction"]},
                              {"role": "assistant", "content": r["output"]}]} for r in records]
    if "messages" in cfg.formats:
        files["messages"] = write_jsonl(out_dir / f"{name}.messages.jsonl", messages)
    if "hf" in cfg.formats:
        try:
            import datasets
        except ImportError:
            raise missing_extra("datasets", "datasets") from None
        files["hf"] = out_dir / "hf"
        rows = [{**r, **m, **{k: v for k, v in meta[a.problem_id].items() if k in ("id", "state")}}
                for r, m, a in zip(records, messages, kept)]
        with atomic_dir(files["hf"]) as tmp:
            datasets.Dataset.from_list(rows).save_to_disk(str(tmp))
    # the sidecar is written last: a trainer checks the data against its record count
    files["excluded"] = write_jsonl(out_dir / "excluded.jsonl", [
        {"id": a.problem_id, "state": a.state, "reason": a.note, "problem": a.problem[:200]}
        for a in assignments if not a.exported])
    files["meta"] = write_jsonl(out_dir / f"{name}.meta.jsonl", [
        {**meta[a.problem_id], "record_sha256": record_digest(r)} for a, r in zip(kept, records)])
    return files


def _official_result(problem: Any, rec: Any) -> dict[str, Any]:
    prompt, completion = ((rec.prompt_tokens or 0), (rec.completion_tokens or 0)) if rec else (0, 0)
    return {"problem": problem.problem, "gold_answer": problem.gold_answer,
            "model_response": (rec.text or "") if rec is not None and rec.status == "ok" else "",
            "metrics": {"prompt_tokens": prompt, "solution_tokens": completion,
                        "total_tokens": prompt + completion}}


def official_model_name(model: str) -> str:
    """The folder the official scripts give an instruct model's prefix search: its name."""
    return Path(model.rstrip("/")).name or "instruct"


def export_official_layout(result: Any, cfg: Any, out_dir: Path) -> dict[str, Path]:
    """The official scripts' four intermediate files, in their shapes, keys and places
    (``k_prefix.json`` under the instruct model's name, as their prefix step writes it), so
    users of those scripts can carry on with their own tools (e.g. their ``merge.py``).
    A problem that is incomplete (a failed generation, an undecided grade) is in none of the
    files: merge.py would make a training record of whatever they held for it. Indices are
    positions among the problems written. A failed attempt's partial text is never written."""
    import time

    from hinttune.construction.states import INCOMPLETE

    out_dir.mkdir(parents=True, exist_ok=True)
    incomplete = {a.problem_id for a in result.assignments if a.state == INCOMPLETE}
    problems = [p for p in result.problems if p.id not in incomplete]
    think = [_official_result(p, result.attempts["think"].get((p.id, 0))) for p in problems]
    instruct = [_official_result(p, result.attempts["instruct"].get((p.id, 0))) for p in problems]
    grading = [{"question_id": i, "is_correct": bool(getattr(result.verdicts["think"].get(p.id), "correct", False))}
               for i, p in enumerate(problems)]
    entries = []
    for i, p in enumerate(problems):
        outcome = result.probes.get(p.id)
        if outcome is None or outcome.incomplete:
            continue
        all_k = [{"k": a.k, "correct": bool(a.verdict.correct), "tokens": a.completion_tokens or 0}
                 for a in outcome.attempts]
        entry: dict[str, Any] = {"success": False, "total_parts": outcome.n,
                                 "reason": "No prefix led to correct answer", "all_k_results": all_k}
        hit = outcome.solution
        if hit is not None:
            entry = {"success": True, "k_value": hit.k, "total_parts": outcome.n,
                     "prefix": "".join(result.episodes[p.id][:hit.k]),
                     "prefix_tokens": hit.prompt_tokens or 0, "instruct_tokens": hit.completion_tokens or 0,
                     "generated_text": hit.text, "all_k_results": all_k}
        entries.append({**entry, "problem": p.problem, "gold_answer": p.gold_answer, "_original_idx": i})
    k_prefix = {"metadata": {"timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
                             "instruct_model": cfg.instruct.model, "num_problems": len(entries),
                             "sequential_mode": False},
                "results": entries}
    model_dir = out_dir / official_model_name(cfg.instruct.model)
    files = {}
    for name, folder, data in (("think_results", out_dir, think), ("instruct_results", out_dir, instruct),
                               ("llm_grading_think", out_dir, grading), ("k_prefix", model_dir, k_prefix)):
        files[name] = write_json(folder / f"{name}.json", data, final_newline=False)
    stale = out_dir / "k_prefix.json"  # where earlier versions wrote it
    if stale.exists():
        stale.unlink()
    return files
