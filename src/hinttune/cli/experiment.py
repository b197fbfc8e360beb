"""The ``hinttune`` commands for experiments: the paper's table in one command."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from hinttune.cli.common import VerboseOpt, app, friendly
from hinttune.core.errors import HinttuneError
from hinttune.core.progress import console, show


@app.command()
@friendly
def experiment(config: str = typer.Option(..., "--config", "-c", help="An experiment YAML, or a preset (demo)."),
               set: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override an experiment setting: "
                                                       "KEY=VALUE (repeatable), e.g. training.seeds=[1,2,3]."),
               jobs: bool = typer.Option(False, "--jobs", help="List the jobs, one id per line, and stop."),
               stage: Optional[str] = typer.Option(None, "--stage", help="With --jobs or --job-index: only the "
                                                   "train or the eval jobs."),
               job: Optional[str] = typer.Option(None, "--job", help="Run this one job (an id --jobs lists)."),
               job_index: Optional[int] = typer.Option(None, "--job-index", help="Run the I-th job (from 0) of "
                                                       "--jobs [--stage]: a Slurm array task's id."),
               report_only: bool = typer.Option(False, "--report", help="Only write the table from the jobs done."),
               verbose: bool = VerboseOpt) -> None:
    """Train every dataset (x seeds, at equal compute), evaluate the base and every trained model,
    and write the paper's table: experiment.json, experiment.md, experiment.png.

    Example: [cyan]hinttune experiment -c demo[/]  ·  for a Slurm array: [cyan]hinttune experiment -c exp.yaml
    --jobs --stage train[/], then [cyan]--job-index $SLURM_ARRAY_TASK_ID --stage train[/] per task (see examples/slurm)
    """
    from hinttune.core.store.rundir import setup_logging
    from hinttune.core.config import load_experiment
    from hinttune.experiment.runner import prepare, report, run_jobs
    from hinttune.experiment.table import rich_table

    if stage not in (None, "train", "eval"):
        raise HinttuneError(f"--stage {stage!r}: use train or eval")
    cfg = load_experiment(config, list(set or []))
    setup_logging(Path(cfg.output_dir), verbose)
    datasets, every = prepare(cfg)
    listed = [j for j in every if stage is None or j.kind == stage]
    if jobs:
        for j in listed:
            typer.echo(j.id)
        return
    if job_index is not None:
        if not 0 <= job_index < len(listed):
            raise HinttuneError(f"--job-index {job_index}: there are {len(listed)} jobs (0 to {len(listed) - 1})")
        job = listed[job_index].id
    if job is not None:
        run_jobs(cfg, every, only=job)
        return
    if not report_only:
        run_jobs(cfg, every)
    table, written = report(cfg, every, datasets)
    show(rich_table(table))
    console.print("written: " + ", ".join(str(p) for p in written), highlight=False)
    if table["missing_jobs"]:
        console.print(f"[yellow]{len(table['missing_jobs'])} jobs not run yet[/]: "
                      + ", ".join(table["missing_jobs"]), highlight=False)
        raise typer.Exit(3)
