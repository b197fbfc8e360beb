"""Running an experiment top to bottom: the construction run when it is not built yet, every
training and evaluation that is not done, then the table from what is done."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hinttune.core.config import ExperimentConfig, load_config
from hinttune.core.errors import HinttuneError
from hinttune.core.progress import console
from hinttune.experiment.datasets import Dataset, dataset_folder, resolve
from hinttune.experiment.jobs import Job, plan, run_job
from hinttune.experiment.table import build_table, write_outputs

log = logging.getLogger(__name__)


def ensure_run(cfg: ExperimentConfig) -> None:
    """Build the construction run first when ``build`` is set and the run has no export."""
    if cfg.build is None or cfg.run is None:
        return
    named = [d.strip() for d in cfg.datasets if "=" not in d]
    if all((dataset_folder(cfg.run, name) / "dataset_info.json").exists() for name in named):
        return
    from hinttune.construction.pipeline import build

    run_cfg = load_config(cfg.build, [*cfg.build_set, f"run_dir={cfg.run}"])
    console.print(f"building the run {cfg.run} ({cfg.build}) first", highlight=False)
    result = build(run_cfg)
    if not (Path(cfg.run) / "export" / "dataset_info.json").exists():
        raise HinttuneError(f"the run {cfg.run} was built but exported no dataset ({result.summary.get('records')} records)")


def prepare(cfg: ExperimentConfig) -> tuple[list[Dataset], list[Job]]:
    """The datasets (the run built first where needed) and every job over them."""
    ensure_run(cfg)
    datasets = resolve(cfg)
    return datasets, plan(cfg, datasets)


def jobs_of(cfg: ExperimentConfig) -> list[Job]:
    return prepare(cfg)[1]


def run_jobs(cfg: ExperimentConfig, jobs: list[Job], only: str | None = None) -> None:
    chosen = [j for j in jobs if only is None or j.id == only]
    if only is not None and not chosen:
        raise HinttuneError(f"--job {only}: no such job (hinttune experiment -c ... --jobs lists them)")
    for i, job in enumerate(chosen, 1):
        if job.done():
            console.print(f"[{i}/{len(chosen)}] {job.id}: done before, skipped", highlight=False)
            continue
        console.print(f"[{i}/{len(chosen)}] {job.id} → {job.folder}", highlight=False)
        run_job(cfg, job, jobs)


def report(cfg: ExperimentConfig, jobs: list[Job],
           datasets: list[Dataset] | None = None) -> tuple[dict[str, Any], list[Path]]:
    from hinttune.evaluation.compare import load_results

    missing = [j.id for j in jobs if not j.done()]
    if missing:
        log.warning("%d jobs have not run yet (%s): the table leaves them out", len(missing), ", ".join(missing))
    results = {j.id: load_results(str(j.folder), j.label) for j in jobs if j.kind == "eval" and j.done()}
    table = build_table(cfg, jobs, datasets if datasets is not None else resolve(cfg), results)
    table["missing_jobs"] = missing
    return table, write_outputs(table, Path(cfg.output_dir))
