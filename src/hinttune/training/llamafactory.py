"""The same recipe for LLaMA-Factory users: a training YAML plus the dataset and its
``dataset_info.json`` entry, ready for ``llamafactory-cli train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hinttune.core.config import TrainConfig
from hinttune.core.errors import HinttuneError
from hinttune.core.files import write_json, write_text
from hinttune.training.sft import load_sft_data

DATASET_NAME = "hint_tuning"

# LLaMA-Factory's chat template names, by the model family a model id names (first match wins)
# (qwen2 and qwq share LLaMA-Factory's qwen template, as their own chat templates do; a model no
# entry names gets an error, never a template whose default system prompt is another model's)
TEMPLATES = (("deepseek-r1", "deepseekr1"), ("qwq", "qwen"), ("qwen3", "qwen3"), ("qwen2", "qwen"),
             ("llama-3", "llama3"), ("llama3", "llama3"), ("mistral", "mistral"),
             ("gemma-3", "gemma3"), ("gemma", "gemma"), ("phi-4", "phi4"), ("smollm2", "smollm2"),
             ("smollm", "smollm"))

# DeepSpeed ZeRO-3 for full-parameter SFT; "auto" values are filled in by the HF Trainer
ZERO3 = {
    "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
    "zero_allow_untested_optimizer": True,
    "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000,
             "initial_scale_power": 16, "hysteresis": 2, "min_loss_scale": 1},
    "bf16": {"enabled": "auto"},
    "zero_optimization": {"stage": 3, "overlap_comm": False, "contiguous_gradients": True,
                          "sub_group_size": 1e9, "reduce_bucket_size": "auto",
                          "stage3_prefetch_bucket_size": "auto",
                          "stage3_param_persistence_threshold": "auto",
                          "stage3_max_live_parameters": 1e9, "stage3_max_reuse_distance": 1e9,
                          "stage3_gather_16bit_weights_on_model_save": True},
}


def template_for(model: str) -> str:
    """LLaMA-Factory's template for a model, from its name."""
    name = model.lower()
    for needle, template in TEMPLATES:
        if needle in name:
            return template
    raise HinttuneError(f"no LLaMA-Factory chat template is known for {model!r}: pass --template "
                        "(e.g. qwen3, deepseekr1, llama3)")


def _absolute(name: str) -> str:
    """A local model folder as an absolute path (the recipe is run from LLaMA-Factory's own
    checkout); a hub id as it is."""
    return str(Path(name).resolve()) if Path(name).exists() else name


def llamafactory_recipe(cfg: TrainConfig, out_dir: Path, template: str | None = None, gpus: int = 8,
                        deepspeed: bool | None = None) -> dict[str, Path]:
    """The recipe, the data and its dataset_info.json in ``out_dir``, every path in it absolute
    (so it does not depend on where LLaMA-Factory is checked out); a DeepSpeed ZeRO-3 config
    for full-parameter training on more than one GPU (``deepspeed``: None decides by ``gpus``)."""
    template = template or template_for(cfg.model)
    deepspeed = gpus > 1 if deepspeed is None else deepspeed
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
        "model_name_or_path": _absolute(cfg.model), "trust_remote_code": True,
        "stage": "sft", "do_train": True,
        "finetuning_type": "lora" if cfg.lora.enabled else "full",
        "dataset": DATASET_NAME, "dataset_dir": str(out_dir.resolve()), "template": template,
        "cutoff_len": cfg.max_length, "train_on_prompt": False,  # loss on the response only
        "overwrite_cache": True, "preprocessing_num_workers": 16,
        "output_dir": str(Path(cfg.output_dir).resolve()), "logging_steps": cfg.logging_steps,
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
        ds_file = write_json(out_dir / "ds_z3_config.json", ZERO3)
        recipe["deepspeed"] = str(ds_file.resolve())
    recipe_file = out_dir / "hint_tuning_sft.yaml"
    header = (f"# LLaMA-Factory: llamafactory-cli train {recipe_file.name}\n"
              f"# global batch {cfg.global_batch_size} = {cfg.per_device_batch_size} per device x "
              f"{gpus} GPUs x {recipe['gradient_accumulation_steps']} accumulation steps\n")
    write_text(recipe_file, header + yaml.safe_dump(recipe, sort_keys=False))
    return {"recipe": recipe_file, "dataset_info": info_file, "data": data_file}
