"""The ``hinttune`` commands for training: train, augment, llamafactory, accelerate-config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from hinttune.cli.common import TrainSetOpt, app, friendly
from hinttune.core.errors import HinttuneError
from hinttune.core.progress import console


def _train_config(recipe: str, sets: Optional[List[str]], **fields: Any):
    from hinttune.core.config import load_train_config

    overrides = list(sets or [])
    for key, value in fields.items():
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_train_config(recipe, overrides)
    for key in ("data", "model"):
        if not getattr(cfg, key):
            raise HinttuneError(f"--{key} is required")
    return cfg


RecipeOpt = typer.Option("s1", "--recipe", "-r", help="Training recipe: a YAML file or a preset "
                         "(s1: the paper's; relax-4b: the paper's 4B Relax script).")
DataOpt = typer.Option(None, "--data", "-d", help="Alpaca JSON, messages JSONL, or a run directory.")
ModelOpt = typer.Option(None, "--model", "-m", help="The think model to fine-tune (hub id or folder).")
OutOpt = typer.Option(None, "--output-dir", "-o", help="Where checkpoints and the final model go.")


@app.command()
@friendly
def train(data: Optional[str] = DataOpt, model: Optional[str] = ModelOpt,
          output_dir: Optional[Path] = OutOpt, recipe: str = RecipeOpt,
          set: Optional[List[str]] = TrainSetOpt,
          lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters (PEFT) instead of all weights."),
          augment: bool = typer.Option(False, "--augment", help="Add instruction phrasings on the fly."),
          resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the last checkpoint."),
          cpu: bool = typer.Option(False, "--cpu", help="Train on the CPU (fp32, for tests and tiny models)."),
          quick: bool = typer.Option(False, "--quick", help="A quick test: no checkpoints or optimizer state "
                                     "saved (only the final model), nothing resumed."),
          report_to: Optional[str] = typer.Option(None, "--report-to", help="Where to log training: auto "
                                                  "(TensorBoard when installed, the default), tensorboard, wandb, "
                                                  "none, or several comma-separated.")) -> None:
    """Fine-tune the think model on a Hint Tuning dataset (TRL SFTTrainer, loss on the target only).

    Example: [cyan]hinttune train -d runs/problems -m Qwen/Qwen3-4B-Thinking-2507 -o runs/ht-4b[/]
    Several GPUs: [cyan]accelerate launch --config_file $(hinttune accelerate-config fsdp) -m hinttune train ...[/]
    """
    from hinttune.training.sft import train as run_training

    extra = {"lora.enabled": "true" if lora else None, "augment": "true" if augment else None,
             "resume": str(resume).lower(), "use_cpu": "true" if cpu else None,
             "bf16": "false" if cpu else None, "gradient_checkpointing": "false" if cpu else None,
             "quick": "true" if quick else None}
    if report_to:
        extra["report_to"] = "[" + ",".join(r.strip() for r in report_to.split(",")) + "]"
    cfg = _train_config(recipe, set, data=data, model=model, output_dir=output_dir, **extra)
    result = run_training(cfg)
    last = f"last logged loss {result['losses'][-1]:.4f}" if result["losses"] else "no loss logged"
    console.print(f"trained {result['steps']} steps on {result['records']} records ({last})"
                  + (f", resumed from {result['resumed_from']}" if result["resumed_from"] else "")
                  + f" → {cfg.output_dir}", highlight=False)


@app.command("augment")
@friendly
def augment_command(data: str = typer.Option(..., "--data", "-d", help="Alpaca JSON or a run directory."),
                    output: Path = typer.Option(..., "--output", "-o", help="Where to write the Alpaca JSON."),
                    copies: int = typer.Option(1, "--copies", help="Variants added per record."),
                    template: Optional[List[str]] = typer.Option(None, "--template", "-t", help=
                                                                 "A phrasing with {problem} (repeatable; default: a built-in list)."),
                    seed: int = typer.Option(0, "--seed")) -> None:
    """Write a copy of a dataset with extra prompt phrasings per sample (the original kept).

    Example: [cyan]hinttune augment -d runs/demo -o augmented.json --copies 2[/]
    """

    from hinttune.core.files import write_json
    from hinttune.training.augment import DEFAULT_TEMPLATES, augment_records
    from hinttune.training.sft import load_sft_data

    templates = tuple(template) if template else DEFAULT_TEMPLATES
    if any("{problem}" not in t for t in templates):
        raise HinttuneError("every --template must contain {problem}")
    records = load_sft_data(data).records
    out = augment_records(records, templates, copies, seed)
    write_json(output, out)
    console.print(f"{len(records)} records → {len(out)} records in {output}", highlight=False)


@app.command("llamafactory")
@friendly
def llamafactory_command(data: Optional[str] = DataOpt, model: Optional[str] = ModelOpt,
                         output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Folder for the recipe and data."),
                         recipe: str = RecipeOpt, set: Optional[List[str]] = TrainSetOpt,
                         template: Optional[str] = typer.Option(None, "--template", help="LLaMA-Factory chat template (qwen3, deepseekr1, ...); default: from the model's name."),
                         gpus: int = typer.Option(8, "--gpus", help="GPUs the run will use (sets gradient accumulation)."),
                         deepspeed: Optional[bool] = typer.Option(None, "--deepspeed/--no-deepspeed", help="Write a DeepSpeed ZeRO-3 config for full-parameter training (default: when --gpus is more than 1)."),
                         lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters instead of all weights.")) -> None:
    """Export the training recipe for LLaMA-Factory: a YAML, the data and its dataset_info.json.

    Example: [cyan]hinttune llamafactory -d runs/problems -m Qwen/Qwen3-4B-Thinking-2507 -o lf/[/]
    """
    from hinttune.training.llamafactory import llamafactory_recipe

    cfg = _train_config(recipe, set, data=data, model=model, **{"lora.enabled": "true" if lora else None})
    files = llamafactory_recipe(cfg, output_dir, template=template, gpus=gpus, deepspeed=deepspeed)
    console.print(f"wrote {', '.join(str(p) for p in files.values())}\n"
                  f"run: llamafactory-cli train {files['recipe']}", highlight=False)


@app.command("accelerate-config")
@friendly
def accelerate_config(name: str = typer.Argument(..., help="ddp, fsdp or zero3")) -> None:
    """Print the path of a shipped accelerate config (DDP, FSDP full shard, DeepSpeed ZeRO-3).

    Example: [cyan]accelerate launch --config_file $(hinttune accelerate-config fsdp) -m hinttune train ...[/]
    """
    from importlib import resources

    path = resources.files("hinttune") / "recipes" / "accelerate" / f"{name}.yaml"
    if not path.is_file():
        raise HinttuneError(f"{name!r}: choose ddp, fsdp or zero3")
    typer.echo(str(path))
