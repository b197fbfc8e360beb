"""The ``hinttune`` command line. Every stage takes the same options: a config (file or
preset), ``--set key=value`` overrides for any field, and shortcuts for the common ones."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from hinttune.errors import HinttuneError
from hinttune.progress import console

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="Hint Tuning: difficulty-adaptive reasoning datasets, built resumably.")

ConfigOpt = typer.Option("demo", "--config", "-c", help="YAML config file or preset name "
                         "(see `hinttune presets`).")
SetOpt = typer.Option(None, "--set", "-s", help="Override any config field: "
                      "--set think.sampling.temperature=0.6 (repeatable).")
RunDirOpt = typer.Option(None, "--run-dir", "-o", help="Run directory (overrides run_dir).")
ProblemsOpt = typer.Option(None, "--problems", "-p", help="Problem source (overrides "
                           "problems.source): a .json/.jsonl/.parquet file, a dataset folder or "
                           "a hub dataset name.")
VerboseOpt = typer.Option(False, "--verbose", "-v", help="Show info logs on screen.")


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User errors become one red line and exit code 2, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HinttuneError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]: everything finished so far is saved; run the "
                          "same command again to resume.")
            raise typer.Exit(130) from None
    return wrapper


def resolve(config: str, sets: Optional[List[str]], run_dir: Optional[Path],
            problems: Optional[str]):
    from hinttune.config import load_config

    overrides = list(sets or [])
    if run_dir is not None:
        overrides.append(f"run_dir={run_dir}")
    if problems is not None:
        overrides.append(f"problems.source={problems}")
    return load_config(config, overrides)


PolicyOpt = typer.Option(None, "--policy", help="State rules: 'paper' (default) or 'official' "
                         "(reproduces the official scripts; sets assemble.policy).")
LayoutOpt = typer.Option(None, "--layout", help="'official' also writes the official scripts' "
                         "four intermediate files to export/official/ (sets export.official_layout).")
KeepOpt = typer.Option(None, "--keep-unverified/--drop-unverified", help="Keep Full-Hint targets "
                       "whose think answer was not graded correct (sets assemble.keep_unverified).")

STAGE_HELP = {
    "attempts": "Stage 1: the think and the instruct model each answer every problem, no hint.",
    "grade": "Stages 1-2: grade both models' answers against the gold answers.",
    "segment": "Stages 1-3: split each think trace into episodes (writes segments.jsonl).",
    "probe": "Stages 1-4: find each problem's minimal effective hint K*, batched across problems.",
    "assemble": "Stages 1-5: assign No-Hint / Sparse-Hint / Full-Hint.",
    "export": "Stages 1-6: write the dataset (Alpaca JSON, messages JSONL, LLaMA-Factory entry).",
    "summary": "Stages 1-7: summary table, summary.json and plots.",
    "run": "Build a Hint Tuning dataset: every stage in order, resuming from what is done.",
}


def _stage_command(name: str) -> None:
    def command(config: str = ConfigOpt, set: Optional[List[str]] = SetOpt,
                run_dir: Optional[Path] = RunDirOpt, problems: Optional[str] = ProblemsOpt,
                policy: Optional[str] = PolicyOpt, keep_unverified: Optional[bool] = KeepOpt,
                layout: Optional[str] = LayoutOpt,
                verbose: bool = VerboseOpt) -> None:
        from hinttune.pipeline import build
        from hinttune.report import stage_report
        from hinttune.rundir import setup_logging

        extra = [f"assemble.policy={policy}"] if policy else []
        if layout is not None:
            if layout not in ("official", "default"):
                raise HinttuneError(f"--layout {layout!r}: use 'official' or 'default'")
            extra.append(f"export.official_layout={str(layout == 'official').lower()}")
        if keep_unverified is not None:
            extra.append(f"assemble.keep_unverified={str(keep_unverified).lower()}")
        cfg = resolve(config, [*(set or []), *extra], run_dir, problems)
        setup_logging(Path(cfg.run_dir), verbose)
        result = build(cfg, until="summary" if name == "run" else name)
        for renderable in stage_report(result):
            console.print(renderable)

    command.__doc__ = (f"{STAGE_HELP[name]}\n\nExample: [cyan]hinttune {name} --config demo[/]"
                       "  ·  re-run the same command to resume.")
    app.command(name)(friendly(command))


for _name in STAGE_HELP:
    _stage_command(_name)


@app.command()
@friendly
def status(run_dir: Path = typer.Argument(..., help="A run directory.")) -> None:
    """Per-stage progress of a run (works while it is running).

    Example: [cyan]hinttune status runs/demo[/]
    """
    from hinttune.report import status_table
    from hinttune.store import RunStore

    if not (run_dir / "store.sqlite").exists():
        raise HinttuneError(f"{run_dir}: not a run directory (no store.sqlite)")
    with RunStore(run_dir) as store:
        console.print(status_table(store.status()))


@app.command()
def presets() -> None:
    """List the built-in configuration presets."""
    from hinttune.config import preset_names

    for name in preset_names():
        typer.echo(name)


@app.command("config")
@friendly
def show_config(config: str = ConfigOpt, set: Optional[List[str]] = SetOpt,
                run_dir: Optional[Path] = RunDirOpt, problems: Optional[str] = ProblemsOpt) -> None:
    """Print the resolved configuration (preset or file, plus overrides) as YAML.

    Example: [cyan]hinttune config -c paper --set think.tensor_parallel_size=4[/]
    """
    from hinttune.config import dump_config

    sys.stdout.write(dump_config(resolve(config, set, run_dir, problems)))


def main() -> None:  # pragma: no cover
    app()
