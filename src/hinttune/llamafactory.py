"""The same recipe for LLaMA-Factory users: a training YAML plus the dataset and its
``dataset_info.json`` entry, ready for ``llamafactory-cli train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hinttune.config import TrainConfig
from hinttune.files import write_json, write_text
from hinttune.training import load_sft_data

DATASET_NAME = "hint_tuning"


def llamafactory_recipe(cfg: TrainConfig, out_dir: Path, template: str = "qwen3", gpus: int = 8,
                        deepspeed: str | None = "examples/deepspeed/ds_z3_config.json") -> dict[str, Path]:
    data = load_sft_data(cfg.data)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_file = out_dir / f"{DATASET_NAME}.json"
    records = [{k: r[k] for k in ("instruction", "input", "output") if k in r} for r in data.records]
    write_json(data_file, records)
    info = {DATASET_NAME: {"file_name": data_file.name,
                           "columns": {"prompt": "instruction", "query": "input", "response": "output"}}}
    info_file = out_dir / "dataset_info.json"
    write_json(info_file, info)
    per_step = cfg.per_device_batch_size * gpus
    recipe: dict[str, Any] = {
        "model_name_or_path": cfg.model, "trust_remote_code": True,
        "stage": "sft", "do_train": True,
        "finetuning_type": "lora" if cfg.lora.enabled else "full",
        "dataset": DATASET_NAME, "dataset_dir": str(out_dir.resolve()), "template": template,
        "cutoff_len": cfg.max_length, "train_on_prompt": False,  # loss on the response only
        "overwrite_cache": True, "preprocessing_num_workers": 16,
        "output_dir": str(cfg.output_dir), "logging_steps": cfg.logging_steps,
        "save_strategy": cfg.save_strategy, "plot_loss": True, "report_to": "none",
        "per_device_train_batch_size": cfg.per_device_batch_size,
        "gradient_accumulation_steps": max(1, cfg.global_batch_size // per_step),
        "learning_rate": cfg.learning_rate, "num_train_epochs": cfg.num_train_epochs,
        "lr_scheduler_type": cfg.lr_scheduler_type, "warmup_ratio": cfg.warmup_ratio,
        "weight_decay": cfg.weight_decay, "adam_beta1": cfg.adam_beta1, "adam_beta2": cfg.adam_beta2,
        "bf16": cfg.bf16, "ddp_timeout": 180000000,
    }
    if cfg.lora.enabled:
        target = cfg.lora.target_modules
        recipe.update(lora_rank=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      lora_target="all" if target == "all-linear" else ",".join(target))
    elif deepspeed:
        recipe["deepspeed"] = deepspeed
    recipe_file = out_dir / "hint_tuning_sft.yaml"
    header = (f"# LLaMA-Factory: llamafactory-cli train {recipe_file.name}\n"
              f"# global batch {cfg.global_batch_size} = {cfg.per_device_batch_size} per device x "
              f"{gpus} GPUs x {recipe['gradient_accumulation_steps']} accumulation steps\n")
    write_text(recipe_file, header + yaml.safe_dump(recipe, sort_keys=False))
    return {"recipe": recipe_file, "dataset_info": info_file, "data": data_file}
