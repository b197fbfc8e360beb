"""Stage 6, export: the dataset in the formats trainers read.

- ``hint_tuning.json``: Alpaca records exactly as released (instruction, input, output);
- ``hint_tuning.messages.jsonl``: the same as chat ``messages`` (TRL, most SFT stacks);
- ``dataset_info.json``: the LLaMA-Factory entry (prompt→instruction, query→input,
  response→output);
- ``hint_tuning.meta.jsonl``: per record: problem id, state, K*, N, token counts, graders;
- ``excluded.jsonl``: problems with no exported target, and why;
- ``hf/``: a ``datasets`` save_to_disk folder (with ``export.formats`` containing ``hf``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hinttune.config import ExportConfig
from hinttune.errors import missing_extra
from hinttune.states import Assignment, alpaca_record


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def export_dataset(assignments: list[Assignment], meta: dict[str, dict[str, Any]],
                   out_dir: Path, cfg: ExportConfig) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = [a for a in assignments if a.exported]
    records = [alpaca_record(a.problem, a.thinking, a.answer) for a in kept]
    name = cfg.dataset_name
    files: dict[str, Path] = {}
    if "alpaca" in cfg.formats:
        files["alpaca"] = out_dir / f"{name}.json"
        files["alpaca"].write_text(json.dumps(records, ensure_ascii=False, indent=2) + "\n", "utf-8")
        files["dataset_info"] = out_dir / "dataset_info.json"
        files["dataset_info"].write_text(json.dumps({name: {
            "file_name": f"{name}.json",
            "columns": {"prompt": "instruction", "query": "input", "response": "output"}}},
            indent=2) + "\n", "utf-8")
    messages = [{"messages": [{"role": "user", "content": r["instruction"]},
                              {"role": "assistant", "content": r["output"]}]} for r in records]
    if "messages" in cfg.formats:
        files["messages"] = out_dir / f"{name}.messages.jsonl"
        _write_jsonl(files["messages"], messages)
    if "hf" in cfg.formats:
        try:
            import datasets
        except ImportError:
            raise missing_extra("datasets", "datasets") from None
        files["hf"] = out_dir / "hf"
        rows = [{**r, **m, **{k: v for k, v in meta[a.problem_id].items() if k in ("id", "state")}}
                for r, m, a in zip(records, messages, kept)]
        datasets.Dataset.from_list(rows).save_to_disk(str(files["hf"]))
    files["meta"] = out_dir / f"{name}.meta.jsonl"
    _write_jsonl(files["meta"], [meta[a.problem_id] for a in kept])
    files["excluded"] = out_dir / "excluded.jsonl"
    _write_jsonl(files["excluded"], [{"id": a.problem_id, "state": a.state, "reason": a.note,
                                      "problem": a.problem[:200]} for a in assignments if not a.exported])
    return files
