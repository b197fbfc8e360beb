"""``hinttune train``: fine-tune the think model on a Hint Tuning dataset with TRL's
SFTTrainer (accelerate underneath, so DDP, FSDP and DeepSpeed come from ``accelerate launch``).

Each record becomes a prompt and a completion: the prompt is the user turn rendered with the
model's generation prompt, the completion the whole ``<think>…</think>`` + answer appended as
text (``chat_format``: no template may drop or double the reasoning), tokenized here and given
to TRL with its completion mask, so the loss is on the target's tokens only. Samples longer than
``max_length`` are dropped and listed (never silently cut before ``</think>`` or the answer)
unless truncation is asked for.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hinttune.core.config import TrainConfig, dump_config
from hinttune.core.errors import HinttuneError, missing_extra
from hinttune.core.files import jsonl_lines, read_json, read_jsonl, read_text, write_text
from hinttune.core.fingerprint import record_digest
from hinttune.core.plots import pyplot, save
from hinttune.core.progress import console
from hinttune.core.provenance import versions
from hinttune.training.augment import augment_records
from hinttune.training.chat_format import ChatFormat, chat_format, tokenize_sample
from hinttune.training.loss_weighting import trainer_class
from hinttune.training.checkpoints import make_portable

log = logging.getLogger(__name__)


@dataclass
class SFTData:
    records: list[dict[str, Any]]  # Alpaca: instruction, input, output
    ids: list[str]  # problem ids where known (from the metadata sidecar), else record indices
    source: str
    states: Counter
    chat_format: ChatFormat | None = None  # set once the tokenizer is known
    prompt_example: str = ""  # the first record's prompt exactly as trained


def _read_alpaca(path: Path) -> list[dict[str, Any]]:
    data = read_json(path)
    if not isinstance(data, list):
        raise HinttuneError(f"{path}: expected a JSON list of Alpaca records")
    for i, r in enumerate(data):
        if not isinstance(r, dict) or not isinstance(r.get("instruction"), str) or not isinstance(r.get("output"), str):
            raise HinttuneError(f"{path}: record {i}: expected string fields 'instruction' and 'output'")
    return data


def _read_messages(path: Path) -> list[dict[str, Any]]:
    records = []
    for lineno, line in jsonl_lines(read_text(path)):
        try:
            messages = json.loads(line)["messages"]
            *prompt, last = messages
            assert last["role"] == "assistant" and prompt and prompt[-1]["role"] == "user"
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AssertionError):
            raise HinttuneError(f"{path}: line {lineno}: expected {{\"messages\": [..., user, assistant]}}") from None
        records.append({"instruction": prompt[-1]["content"], "input": "", "output": last["content"],
                        "history": prompt[:-1]})
    return records


def load_sft_data(data: str) -> SFTData:
    if str(data).startswith("hf://"):  # a dataset `hinttune push` uploaded
        from hinttune.construction.outputs.hub import fetch

        folder = fetch(str(data))
        info_path = folder / "dataset_info.json"
        if not info_path.exists():
            raise HinttuneError(f"{data}: no dataset_info.json in the repository (not pushed by hinttune?)")
        name, entry = next(iter(json.loads(info_path.read_text()).items()))
        data = str(folder / entry["file_name"])
    path = Path(data)
    if path.is_dir():
        path = dataset_in(path)
    if not path.exists():
        raise HinttuneError(f"{data}: file not found")
    records = _read_messages(path) if path.suffix == ".jsonl" else _read_alpaca(path)
    if not records:
        raise HinttuneError(f"{path}: contains no records")
    meta_path = path.with_name(path.name.split(".")[0] + ".meta.jsonl")
    ids, states = [str(i) for i in range(len(records))], Counter()
    if not meta_path.exists():
        log.warning("%s has no %s beside it: nothing can check that it is the export it should be "
                    "(training on it as it is)", path, meta_path.name)
        return SFTData(records, ids, str(path), states)
    meta = [row for _, row in read_jsonl(meta_path)]
    stale = (f"{path}: does not match its sidecar {meta_path.name}: the export is incomplete, "
             "stale or from another run - run `hinttune export` again")
    if len(meta) != len(records):
        # the export and its sidecar were written by the same run: a mismatch means one of
        # them is cut short or stale, and training on it would silently use the wrong data
        raise HinttuneError(f"{stale} ({len(records)} records, the sidecar lists {len(meta)})")
    if all("record_sha256" in m for m in meta):
        for i, (record, row) in enumerate(zip(records, meta)):
            if record_digest(record)[:len(row["record_sha256"])] != row["record_sha256"]:  # older exports: 32 digits
                raise HinttuneError(f"{stale} (record {i} differs, problem {row.get('id')})")
    else:  # written before sidecars carried digests
        log.warning("%s has no record digests (an older export): only its record count was "
                    "checked; run `hinttune export` again to check every record", meta_path.name)
    ids = [m["id"] for m in meta]
    states = Counter(m["state"] for m in meta)
    return SFTData(records, ids, str(path), states)


def dataset_in(folder: Path) -> Path:
    """The dataset a folder holds: a run directory's export, or a folder export writes
    (export/, export/baselines/NAME/, export/probes/NAME/, export/combined/, a LLaMA-Factory
    data folder): its dataset_info.json entry, else its one messages JSONL."""
    for where in (folder / "export", folder):
        info_path = where / "dataset_info.json"
        if info_path.exists():
            info = read_json(info_path)
            if not isinstance(info, dict) or not info or not all(
                    isinstance(e, dict) and isinstance(e.get("file_name"), str) for e in info.values()):
                raise HinttuneError(f"{info_path}: expected {{NAME: {{\"file_name\": ...}}}}")
            if len(info) > 1:
                log.info("%s names %d datasets: training on the first, %s", info_path, len(info), next(iter(info)))
            return where / next(iter(info.values()))["file_name"]
        messages = sorted(where.glob("*.messages.jsonl"))
        if len(messages) == 1:
            return messages[0]
    raise HinttuneError(f"{folder}: no dataset in it (no dataset_info.json or one NAME.messages.jsonl, in it "
                        "or in its export/) - run `hinttune run` (or export) first, or name the file")


def prompt_completion(record: dict[str, Any]) -> dict[str, Any]:
    user = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
    return {"prompt": [*record.get("history", []), {"role": "user", "content": user}],
            "completion": [{"role": "assistant", "content": record["output"]}]}


def tokenized_samples(records: list[dict[str, Any]], ids: list[str], tokenizer: Any, fmt: ChatFormat,
                      source: str) -> list[dict[str, list[int]]]:
    return [tokenize_sample(tokenizer, fmt, prompt_completion(r)["prompt"], r["output"], f"{source}: record {rid}")
            for r, rid in zip(records, ids)]


def drop_overlong(samples: list[dict[str, Any]], ids: list[str],
                  max_length: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Samples whose prompt + completion fit in ``max_length`` tokens; the ids of the rest."""
    kept, dropped = [], []
    for sample, rid in zip(samples, ids):
        length = len(sample["input_ids"])
        (kept.append(sample) if length <= max_length else dropped.append(f"{rid} ({length} tokens)"))
    return kept, dropped


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def gradient_accumulation(cfg: TrainConfig, processes: int) -> int:
    per_step = cfg.per_device_batch_size * processes
    if cfg.global_batch_size % per_step:
        raise HinttuneError(f"global_batch_size {cfg.global_batch_size} is not a multiple of "
                            f"per_device_batch_size x processes = {per_step}")
    return cfg.global_batch_size // per_step


def build_trainer(cfg: TrainConfig) -> tuple[Any, SFTData]:
    try:
        import datasets
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig
    except ImportError as exc:
        raise missing_extra(exc.name or "trl", "train") from None
    data = load_sft_data(cfg.data)
    records, ids = data.records, data.ids
    if cfg.augment:
        per_record = len(augment_records(records[:1], copies=cfg.augment_copies))
        records = augment_records(records, copies=cfg.augment_copies, seed=cfg.seed)
        ids = [rid if k == 0 else f"{rid}~{k}" for rid in ids for k in range(per_record)]
    tokenizer = _load(AutoTokenizer, cfg.model, "tokenizer")
    if not getattr(tokenizer, "chat_template", None):
        raise HinttuneError(f"{cfg.model}: the tokenizer has no chat template")
    fmt = chat_format(tokenizer, cfg.model)
    log.info("chat format of %s: %s", cfg.model, fmt.describe())
    rows = tokenized_samples(records, ids, tokenizer, fmt, data.source)
    if cfg.overlong == "drop":
        rows, dropped = drop_overlong(rows, ids, cfg.max_length)
        if dropped:
            log.warning("dropped %d samples longer than max_length=%d: %s", len(dropped),
                        cfg.max_length, ", ".join(dropped))
        if not rows:
            raise HinttuneError(f"every sample is longer than max_length={cfg.max_length}")
    steps = planned_steps(cfg, len(rows))
    args = dict(
        output_dir=str(cfg.output_dir), learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=gradient_accumulation(cfg, world_size()),
        weight_decay=cfg.weight_decay,
        lr_scheduler_type=cfg.lr_scheduler_type, adam_beta1=cfg.adam_beta1, adam_beta2=cfg.adam_beta2,
        bf16=cfg.bf16 and not cfg.use_cpu, use_cpu=cfg.use_cpu, max_length=cfg.max_length,
        gradient_checkpointing=cfg.gradient_checkpointing, seed=cfg.seed,
        logging_steps=cfg.logging_steps, save_strategy="no" if cfg.quick else cfg.save_strategy,
        save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit, report_to=report_to(cfg.report_to),
        completion_only_loss=True,  # loss on the completion's tokens only (its mask comes with the samples)
        # whole warmup steps, rounded down: transformers rounds up, so 5% of 3 steps would run
        # the first step at learning rate 0
        warmup_steps=warmup_steps(cfg, steps),
    )
    args.update(cfg.trl_args)
    # fp32 master weights (bf16 compute comes from bf16=True): loaded in bf16, the weights
    # would be updated in bf16, where a step at lr 1e-5 rounds away most changes
    model_kwargs: dict[str, Any] = {"dtype": cfg.torch_dtype}
    if cfg.attn_implementation:
        model_kwargs["attn_implementation"] = cfg.attn_implementation
    model = _load(AutoModelForCausalLM, cfg.model, "model", **model_kwargs)
    console.print(disk_note(cfg, model, len(rows)), highlight=False)
    peft_config = None
    if cfg.lora.enabled:
        try:
            from peft import LoraConfig
        except ImportError:
            raise missing_extra("peft", "train") from None
        peft_config = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                 target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")
    trainer = trainer_class(cfg.loss_weighting)(
        model=model, args=SFTConfig(**args), processing_class=tokenizer,
        train_dataset=datasets.Dataset.from_list(rows), peft_config=peft_config)
    data.chat_format = fmt
    data.prompt_example = _render_prompt(tokenizer, prompt_completion(records[0])["prompt"])
    return trainer, data


def _render_prompt(tokenizer: Any, prompt: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def planned_steps(cfg: TrainConfig, rows: int) -> int:
    steps_per_epoch = max(1, -(-rows // cfg.global_batch_size))
    return cfg.max_steps if cfg.max_steps > 0 else max(1, int(steps_per_epoch * cfg.num_train_epochs))


def warmup_steps(cfg: TrainConfig, steps: int) -> int:
    return int(cfg.warmup_ratio * steps)


def on_this_machine(cfg: TrainConfig) -> TrainConfig:
    """With no GPU here, train on the CPU (fp32, no gradient checkpointing) instead of failing
    deep inside transformers; said once."""
    if cfg.use_cpu:
        return cfg
    import torch

    if torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available()):
        return cfg
    console.print("no GPU found: training on the CPU in fp32 (pass --cpu to say so; on a GPU machine "
                  "check that `python -c 'import torch; print(torch.cuda.is_available())'` prints True)",
                  highlight=False, markup=False)
    return cfg.model_copy(update={"use_cpu": True, "bf16": False, "gradient_checkpointing": False})


def _load(cls: Any, name: str, what: str, **kwargs: Any) -> Any:
    try:
        return cls.from_pretrained(name, **kwargs)
    except OSError as exc:  # not found, not a model folder, no network for a hub id
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HinttuneError(f"could not load the {what} of {name!r}: {first}") from None


def disk_note(cfg: TrainConfig, model: Any, rows: int) -> str:
    """What the run will write: checkpoints (weights and, to resume, optimizer state) and
    how many are kept, then the final model."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = 8 * trainable  # AdamW: two fp32 moments per trained parameter
    each = weights + optimizer
    steps_per_epoch = max(1, -(-rows // cfg.global_batch_size))
    steps = planned_steps(cfg, rows)
    strategy = "no" if cfg.quick else cfg.save_strategy
    saves = {"no": 0, "epoch": -(-steps // steps_per_epoch), "steps": steps // cfg.save_steps}[strategy]
    kept = min(saves, cfg.save_total_limit) if cfg.save_total_limit else saves
    gb = 2 ** 30
    return (f"{steps} steps; {saves} checkpoint(s) ({strategy}) of {each / gb:.1f} GB each "
            f"(weights {weights / gb:.1f} GB + optimizer state {optimizer / gb:.1f} GB), {kept} kept: "
            f"up to {kept * each / gb:.1f} GB in {cfg.output_dir}, then the final model ({weights / gb:.1f} GB)")


def report_to(wanted: list[str]) -> list[str]:
    """``auto``: TensorBoard when it is installed (a loss curve to watch with no account),
    otherwise nothing; names are passed to transformers as given."""
    if wanted == ["auto"]:
        import importlib.util

        found = any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX"))
        return ["tensorboard"] if found else ["none"]
    return list(wanted)


def last_checkpoint(output_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None


def loss_record(log_history: list[dict[str, Any]], start_step: int, global_step: int) -> dict[str, Any]:
    """What the model card reports: the last logged loss (not the run's mean, which a re-run of
    a finished training would report as 0.0) and the steps this invocation actually ran."""
    logged = [h for h in log_history if "loss" in h]
    return {"last_loss": logged[-1]["loss"] if logged else None,
            "last_loss_step": logged[-1].get("step") if logged else None,
            "steps_run": global_step - start_step, "total_steps": global_step}


def write_loss_files(out_dir: Path, log_history: list[dict[str, Any]]) -> list[Path]:
    """``loss.csv`` (step, loss, learning rate, grad norm) beside the checkpoints, and
    ``loss.png`` when matplotlib is installed."""
    import csv
    import io

    rows = [h for h in log_history if "loss" in h]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["step", "epoch", "loss", "learning_rate", "grad_norm"])
    for h in rows:
        writer.writerow([h.get("step"), h.get("epoch"), h["loss"], h.get("learning_rate"), h.get("grad_norm")])
    written = [write_text(out_dir / "loss.csv", buffer.getvalue())]
    plt = pyplot()
    if plt is None:
        return written
    if rows:

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([h.get("step") for h in rows], [h["loss"] for h in rows], marker="o", markersize=3)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss")
        ax.set_title(f"training loss ({len(rows)} logged steps)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        save(fig, out_dir / "loss.png")
        written.append(out_dir / "loss.png")
    return written


def _transformers_version() -> str:
    try:
        import transformers

        return transformers.__version__
    except ImportError:
        return "unknown"


def ran_settings(cfg: TrainConfig, trainer: Any) -> dict[str, Any]:
    """The recipe as it actually ran (after overrides, on this many processes)."""
    args = trainer.args
    processes = max(1, getattr(args, "world_size", 1))
    return {"steps": trainer.state.max_steps, "epochs": round(trainer.state.epoch or 0, 2),
            "global_batch": args.per_device_train_batch_size * processes * args.gradient_accumulation_steps,
            "per_device": args.per_device_train_batch_size, "processes": processes,
            "accumulation": args.gradient_accumulation_steps, "warmup_steps": args.warmup_steps,
            "precision": ("bf16 compute" if args.bf16 else "fp32 compute") + f", weights in {cfg.torch_dtype}",
            "checkpoints": "none (quick test)" if cfg.quick else args.save_strategy}


def model_card(cfg: TrainConfig, data: SFTData, trainer: Any, start_step: int = 0) -> str:
    states = ", ".join(f"{k}: {v}" for k, v in sorted(data.states.items())) or "unknown"
    record = loss_record(trainer.state.log_history, start_step, trainer.state.global_step)
    last = (f"{record['last_loss']:.4f} (step {record['last_loss_step']})"
            if record["last_loss"] is not None else "n/a")
    ran = ran_settings(cfg, trainer)
    fmt = data.chat_format.describe() if data.chat_format else "the model's chat template"
    return f"""---
base_model: {cfg.model}
library_name: transformers
tags: [hint-tuning, sft, trl, reasoning]
---
# {Path(cfg.output_dir).name}

Fine-tuned from `{cfg.model}` with hinttune on a Hint Tuning dataset:
reasoning length adapted to each problem's difficulty (No-Hint / Sparse-Hint / Full-Hint
targets, Fan et al., 2026, arXiv:2605.08665).

- data: `{data.source}` ({len(data.records)} records; {states})
- as run: {ran['steps']} optimizer steps ({ran['epochs']} epochs)
  - global batch {ran['global_batch']}: {ran['per_device']} per device x {ran['processes']} process(es) x {ran['accumulation']} accumulation steps
  - learning rate {cfg.learning_rate}, {ran['warmup_steps']} warmup step(s), {cfg.lr_scheduler_type} schedule; weight decay {cfg.weight_decay}; AdamW betas ({cfg.adam_beta1}, {cfg.adam_beta2})
  - max length {cfg.max_length}; {ran['precision']}; {'LoRA r=' + str(cfg.lora.r) if cfg.lora.enabled else 'full parameters'}
  - loss on the target only, weighted per {cfg.loss_weighting}; checkpoints: {ran['checkpoints']}
- steps: {record['total_steps']} ({record['steps_run']} run by the last invocation); last logged
  training loss: {last}; the curve is in `loss.csv` and `loss.png`

Saved with transformers {_transformers_version()}; the config and tokenizer also carry the
fields transformers 4.x reads (the RoPE base at the top level, a tokenizer class 4.x knows), so
transformers 4.57 and 5.x read the same model.

Trained with: {", ".join(f"{name} {version}" for name, version in versions().items())}.

## Prompt

Trained with each record's instruction as the only user turn ({fmt}). The first record's
prompt exactly as trained — prompt the model the same way:

```
{data.prompt_example}
```

## Full configuration
```yaml
{dump_config(cfg)}```
"""


def train(cfg: TrainConfig) -> dict[str, Any]:
    cfg = on_this_machine(cfg)
    trainer, data = build_trainer(cfg)
    checkpoint = last_checkpoint(Path(cfg.output_dir)) if cfg.resume and not cfg.quick else None
    start_step = 0
    if checkpoint:
        log.info("resuming from %s", checkpoint)
        state_file = Path(checkpoint) / "trainer_state.json"
        if state_file.exists():
            start_step = json.loads(state_file.read_text(encoding="utf-8")).get("global_step", 0)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    if trainer.is_fsdp_enabled:  # gather the full weights on rank 0 for a normal checkpoint
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(cfg.output_dir))
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(str(cfg.output_dir))
        make_portable(Path(cfg.output_dir))  # transformers 4.x reads it the same way
        write_text(Path(cfg.output_dir) / "README.md", model_card(cfg, data, trainer, start_step))
        write_loss_files(Path(cfg.output_dir), trainer.state.log_history)
        write_text(Path(cfg.output_dir) / "hinttune_train.yaml", dump_config(cfg))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"resumed_from": checkpoint, "steps": trainer.state.global_step, "losses": losses,
            "steps_run": trainer.state.global_step - start_step,
            "train_loss": result.training_loss, "records": len(trainer.train_dataset)}
