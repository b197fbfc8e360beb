"""The datasets an experiment compares, and the training length that makes them comparable.

A name resolves in the construction run (``hint-tuning``: its export; ``full``, ``two-state``,
... : ``export/baselines/NAME``); ``NAME=PATH`` takes any dataset ``hinttune train`` reads.
``match`` decides what is held equal: ``epochs`` (the recipe's, so a larger dataset gets more
compute), ``steps`` (every dataset gets the reference's optimizer steps) or ``tokens`` (every
dataset sees about as many target characters as the reference in its steps).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from hinttune.core.config import ExperimentConfig, TrainConfig
from hinttune.core.errors import HinttuneError
from hinttune.training.sft import dataset_in, load_sft_data, planned_steps

HINT_TUNING = "hint-tuning"


@dataclass(frozen=True)
class Dataset:
    name: str
    path: str  # the file trained on
    records: int
    mean_chars: float  # of the prompt and target of a record: what a training step costs
    problems: tuple[str, ...]  # the instructions, for the overlap with the benchmarks
    digest: str  # of the file's bytes: retrain when it changes


def dataset_folder(run: str, name: str) -> Path:
    """Where a run exports the dataset of that name: Hint Tuning's, or a baseline's."""
    return Path(run) / "export" if name == HINT_TUNING else Path(run) / "export" / "baselines" / name


def dataset_path(cfg: ExperimentConfig, entry: str) -> tuple[str, str]:
    """(name, path) of one ``datasets`` entry."""
    name, sep, path = entry.partition("=")
    name = name.strip()
    if sep:
        return name, path.strip()
    if cfg.run is None:
        raise HinttuneError(f"datasets: {name!r} names a dataset of a run, but the experiment has no `run` "
                            "(set run: RUN_DIR, or write NAME=PATH)")
    folder = dataset_folder(cfg.run, name)
    if not folder.is_dir():
        hint = ("" if name == HINT_TUNING else
                f" (build it with --set 'assemble.baselines=[{name}]' on the run)")
        raise HinttuneError(f"datasets: {name!r}: {folder} does not exist{hint}")
    return name, str(dataset_in(folder))


def load_dataset(name: str, path: str) -> Dataset:
    data = load_sft_data(path)
    chars = [len(r["instruction"]) + len(r.get("input", "")) + len(r["output"]) for r in data.records]
    file = Path(data.source)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16] if file.is_file() else path
    return Dataset(name, data.source, len(data.records), sum(chars) / len(chars),
                   tuple(r["instruction"] for r in data.records), digest)


def resolve(cfg: ExperimentConfig) -> list[Dataset]:
    return [load_dataset(*dataset_path(cfg, entry)) for entry in cfg.datasets]


def training_steps(cfg: ExperimentConfig, recipe: TrainConfig, datasets: list[Dataset]) -> dict[str, int]:
    """Optimizer steps per dataset under ``training.match``."""
    reference = next(d for d in datasets if d.name == cfg.reference)
    ref_steps = planned_steps(recipe, reference.records)
    steps = {}
    for d in datasets:
        if cfg.training.match == "epochs":
            steps[d.name] = planned_steps(recipe, d.records)
        elif cfg.training.match == "steps":
            steps[d.name] = ref_steps
        else:  # tokens: as many characters of training text as the reference's steps hold
            steps[d.name] = max(1, round(ref_steps * reference.mean_chars / d.mean_chars))
    return steps
