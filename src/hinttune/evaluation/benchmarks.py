"""Loading a benchmark for ``hinttune eval``: from the hub by default (the definitions are in
``core.benchmarks``), a local file with ``--data-file``, with its fields and answer form."""

from __future__ import annotations

from hinttune.core.benchmarks import BENCHMARKS, Benchmark, gsm8k_answer
from hinttune.core.config import EvalConfig, ProblemsConfig
from hinttune.core.errors import HinttuneError
from hinttune.core.problems import Problem, load_problems

__all__ = ["BENCHMARKS", "Benchmark", "gsm8k_answer", "load_benchmark"]


def load_benchmark(name: str, cfg: EvalConfig) -> list[Problem]:
    """Problems with their gold final answers. Unknown names need ``data_files[name]``."""
    bench = BENCHMARKS.get(name)
    source = cfg.data_files.get(name) or cfg.hub.get(name) or (bench.hub if bench else None)
    if source is None:
        raise HinttuneError(f"benchmark {name!r}: not built in ({', '.join(BENCHMARKS)}); give its "
                            f"file with --data-file {name}=PATH")
    fields = cfg.fields.get(name, {})
    if source == "openai/gsm8k" and name not in cfg.data_files:
        source = "openai/gsm8k:main"
    split = cfg.splits.get(name) or (bench.split if bench else "train")
    problems_cfg = ProblemsConfig(source=source, split=split,
                                  problem_field=fields.get("problem"), answer_field=fields.get("answer"),
                                  limit=cfg.limit)
    loaded = load_problems(problems_cfg)
    transform = bench.answer if bench else str
    return [Problem(p.id, p.problem, transform(p.gold_answer), p.index, p.tags) for p in loaded.problems]
