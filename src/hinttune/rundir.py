"""A run directory: the resolved config, the problems as loaded, the run log and the store."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hinttune.config import RunConfig, dump_config
from hinttune.problems import LoadedProblems, load_problems
from hinttune.progress import console
from hinttune.store import RunStore

log = logging.getLogger(__name__)


def setup_logging(run_dir: Path, verbose: bool = False) -> None:
    from rich.logging import RichHandler

    from hinttune.progress import console

    run_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_hinttune", False):
            root.removeHandler(handler)
    file_handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.setLevel(logging.INFO)
    screen = RichHandler(console=console, show_path=False, show_time=False)
    screen.setLevel(logging.INFO if verbose else logging.WARNING)
    for handler in (file_handler, screen):
        handler._hinttune = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpx2", "openai", "urllib3", "filelock", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def open_run(cfg: RunConfig) -> tuple[RunStore, LoadedProblems]:
    """Write the config and problems into the run directory and open its store."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.yaml"
    text = dump_config(cfg)
    if config_path.exists() and config_path.read_text(encoding="utf-8") != text:
        log.info("configuration changed since the last run: work whose inputs changed is redone")
    config_path.write_text(text, encoding="utf-8")
    loaded = load_problems(cfg.problems)
    with (run_dir / "problems.jsonl").open("w", encoding="utf-8") as out:
        for p in loaded.problems:
            out.write(json.dumps({"id": p.id, "index": p.index, "problem": p.problem,
                                  "gold_answer": p.gold_answer}, ensure_ascii=False) + "\n")
    log.info("%d problems from %s (%d skipped, %d duplicate notes)", len(loaded.problems),
             loaded.source, len(loaded.skipped), len(loaded.duplicates))
    console.print(f"[bold]{len(loaded.problems)}[/] problems from {loaded.source}"
                  + (f", {len(loaded.skipped)} skipped (see run.log)" if loaded.skipped else "")
                  + f" → {run_dir}", highlight=False)
    return RunStore(run_dir), loaded
