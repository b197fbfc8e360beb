"""An experiment's jobs: one training per dataset and seed, one evaluation per model (the base
and every trained one). A job is done when its folder holds ``experiment_job.json`` with the
fingerprint of its inputs (the dataset's bytes, the recipe as it will run, the seed and steps;
for an evaluation the model's training fingerprint or weights and the evaluation settings):
done jobs are skipped, and a job whose inputs changed starts again from an empty folder, so a
model is never retrained nor re-evaluated without cause and never mixes two inputs' results.
Each job runs on its own too (``--job ID``), which is what a Slurm array task does.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hinttune.core.config import EvalConfig, ExperimentConfig, TrainConfig, apply_override, read_yaml, validate_config
from hinttune.core.errors import HinttuneError
from hinttune.core.files import read_json, write_json
from hinttune.core.store import stable_hash
from hinttune.experiment.datasets import Dataset, resolve, training_steps

log = logging.getLogger(__name__)
MARKER = "experiment_job.json"
BASE = "base"


@dataclass(frozen=True)
class Job:
    id: str  # train:NAME:sSEED, eval:base, eval:NAME:sSEED
    kind: str  # train or eval
    folder: Path
    config: TrainConfig | EvalConfig
    fingerprint: str
    dataset: str | None = None
    seed: int | None = None
    needs: str | None = None  # the training job an evaluation waits for

    @property
    def label(self) -> str:
        return BASE if self.dataset is None else f"{self.dataset}-s{self.seed}"

    def marker(self) -> dict[str, Any]:
        path = self.folder / MARKER
        return read_json(path) if path.exists() else {}

    def done(self) -> bool:
        marker = self.marker()
        return marker.get("fingerprint") == self.fingerprint and marker.get("done", True)


def base_model(cfg: ExperimentConfig) -> str:
    """The model trained and evaluated: a GGUF file is converted to a checkpoint once."""
    if not cfg.training.gguf_file:
        return cfg.training.model
    return str(Path(cfg.output_dir) / "base-model")


def ensure_base_model(cfg: ExperimentConfig) -> str:
    path = base_model(cfg)
    if cfg.training.gguf_file and not (Path(path) / "config.json").exists():
        from hinttune.training.checkpoints import materialize_gguf

        tmp = Path(f"{path}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        materialize_gguf(cfg.training.model, cfg.training.gguf_file, tmp)
        tmp.replace(path)  # whole or not at all
    return path


def _settings(config: str, folder: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """A recipe or evaluation preset (or YAML file) with the experiment's overrides applied."""
    data, _ = read_yaml(config, folder)
    for key, value in overrides.items():
        apply_override(data, f"{key}={json.dumps(value)}")
    return data


def plan(cfg: ExperimentConfig, datasets: list[Dataset] | None = None) -> list[Job]:
    """Every job, trainings first, each evaluation after the training it evaluates."""
    datasets = datasets if datasets is not None else resolve(cfg)
    out = Path(cfg.output_dir)
    recipe = _settings(cfg.training.recipe, "recipes", cfg.training.set)
    evaluation = _settings(cfg.evaluation.preset, "eval_presets", cfg.evaluation.set)
    model = base_model(cfg)
    steps = training_steps(cfg, validate_config({**recipe, "data": "-", "model": model}, "recipe", TrainConfig),
                           datasets)
    jobs: list[Job] = []
    evals: list[Job] = []
    if cfg.evaluate_base:
        evals.append(_eval_job(cfg, evaluation, model, out / "evals" / BASE, f"eval:{BASE}", None, None, None,
                               stable_hash("base", model, cfg.training.gguf_file)))
    for d in datasets:
        for seed in cfg.training.seeds:
            folder = out / "models" / f"{d.name}-s{seed}"
            train_cfg = validate_config({**recipe, "data": d.path, "model": model, "output_dir": str(folder),
                                         "seed": seed, "max_steps": steps[d.name]},
                                        f"training {d.name} (seed {seed})", TrainConfig)
            settings = train_cfg.model_dump(mode="json", exclude={"output_dir", "resume", "report_to"})
            train = Job(f"train:{d.name}:s{seed}", "train", folder, train_cfg,
                        stable_hash(d.digest, settings, cfg.training.gguf_file), d.name, seed)
            jobs.append(train)
            evals.append(_eval_job(cfg, evaluation, str(folder), out / "evals" / train.label, f"eval:{d.name}:s{seed}",
                                   d.name, seed, train.id, train.fingerprint))
    return jobs + evals


def _eval_job(cfg: ExperimentConfig, evaluation: dict[str, Any], model: str, folder: Path, job_id: str,
              dataset: str | None, seed: int | None, needs: str | None, model_fingerprint: str) -> Job:
    data = {**evaluation, "output_dir": str(folder),
            "model": {"backend": cfg.evaluation.backend, "model": model, **cfg.evaluation.model}}
    eval_cfg = validate_config(data, f"evaluation of {job_id.removeprefix('eval:')}", EvalConfig)
    settings = eval_cfg.model_dump(mode="json", exclude={"output_dir"})
    return Job(job_id, "eval", folder, eval_cfg, stable_hash(model_fingerprint, settings), dataset, seed, needs)


def run_job(cfg: ExperimentConfig, job: Job, jobs: list[Job]) -> bool:
    """Run one job unless it is done; False when it was skipped."""
    if job.done():
        return False
    if job.needs is not None:
        needed = next(j for j in jobs if j.id == job.needs)
        if not needed.done():
            raise HinttuneError(f"{job.id} evaluates the model of {needed.id}, which has not run "
                                f"(run it first: hinttune experiment ... --job {needed.id})")
    if job.marker() and job.marker().get("fingerprint") != job.fingerprint:
        # begun or done with other inputs: its checkpoints or stored samples are not this job's
        log.info("%s: its inputs changed since it ran; running it again from scratch", job.id)
        shutil.rmtree(job.folder)
    ensure_base_model(cfg)
    # begun: a killed job resumes (a training from its last checkpoint, an evaluation from the
    # samples its store holds) as long as its inputs are the same
    write_json(job.folder / MARKER, {"job": job.id, "fingerprint": job.fingerprint, "done": False})
    if job.kind == "train":
        from hinttune.training.sft import train

        result = train(job.config)
        summary = {"steps": result["steps"], "records": result["records"], "train_loss": result["train_loss"]}
    else:
        from hinttune.evaluation.evaluate import run_eval

        results = run_eval(job.config)
        failed = {b: m["failed"] for b, m in results["benchmarks"].items() if m.get("failed")}
        if failed:  # a failed generation is not a wrong answer: the job is incomplete, retried next time
            raise HinttuneError(f"{job.id}: {sum(failed.values())} generations failed ("
                                + ", ".join(f"{b}: {n}" for b, n in failed.items())
                                + "); the evaluation is incomplete - run the experiment again to retry them")
        summary = {"benchmarks": list(results["benchmarks"])}
    write_json(job.folder / MARKER, {"job": job.id, "fingerprint": job.fingerprint, "done": True, **summary})
    return True
