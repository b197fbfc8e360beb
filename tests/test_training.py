import json
from pathlib import Path

import pytest
import yaml

from hinttune.core.config import TrainConfig, load_train_config
from hinttune.core.errors import HinttuneError
from hinttune.training.augment import DEFAULT_TEMPLATES, augment_records
from hinttune.training.llamafactory import llamafactory_recipe
from hinttune.training.sft import (
    drop_overlong,
    gradient_accumulation,
    load_sft_data,
    prompt_completion,
)

RECORDS = [{"instruction": "What is 2+2?", "input": "", "output": "<think>\nOK,\n</think>\n\n4"},
           {"instruction": "What is 3+3?", "input": "", "output": "<think>\nI may need some deep thinking. 3+3\n</think>\n\n6"}]


@pytest.fixture
def alpaca(tmp_path):
    path = tmp_path / "hint_tuning.json"
    path.write_text(json.dumps(RECORDS))
    return path


def test_recipes_match_the_paper():
    s1 = load_train_config("s1")
    assert (s1.learning_rate, s1.num_train_epochs, s1.global_batch_size, s1.weight_decay) == (1e-5, 5, 16, 1e-4)
    assert (s1.warmup_ratio, s1.lr_scheduler_type, s1.adam_beta1, s1.adam_beta2) == (0.05, "cosine", 0.9, 0.95)
    assert s1.bf16 and s1.max_length == 32768 and s1.gradient_checkpointing
    relax = load_train_config("relax-4b")
    assert (relax.num_train_epochs, relax.global_batch_size) == (6, 32)
    assert load_train_config("s1", ["learning_rate=2e-5"]).learning_rate == 2e-5
    with pytest.raises(HinttuneError, match="lerning_rate: unknown key"):
        load_train_config("s1", ["lerning_rate=2e-5"])


@pytest.mark.parametrize("processes, per_device, accumulation", [(1, 1, 16), (8, 1, 2), (4, 2, 2), (16, 1, 1)])
def test_global_batch_is_kept_whatever_the_gpus(processes, per_device, accumulation):
    cfg = TrainConfig(global_batch_size=16, per_device_batch_size=per_device)
    assert gradient_accumulation(cfg, processes) == accumulation


def test_global_batch_must_divide():
    with pytest.raises(HinttuneError, match="not a multiple"):
        gradient_accumulation(TrainConfig(global_batch_size=16), 3)


def test_inputs_alpaca_messages_and_run_dir(tmp_path, alpaca):
    assert load_sft_data(str(alpaca)).records == RECORDS
    messages = tmp_path / "m.jsonl"
    messages.write_text("\n".join(json.dumps({"messages": [
        {"role": "user", "content": r["instruction"]}, {"role": "assistant", "content": r["output"]}]})
        for r in RECORDS))
    loaded = load_sft_data(str(messages)).records
    assert [(r["instruction"], r["output"]) for r in loaded] == [(r["instruction"], r["output"]) for r in RECORDS]
    run = tmp_path / "run" / "export"
    run.mkdir(parents=True)
    (run / "hint_tuning.json").write_text(json.dumps(RECORDS))
    (run / "dataset_info.json").write_text(json.dumps({"hint_tuning": {"file_name": "hint_tuning.json"}}))
    (run / "hint_tuning.meta.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "state": s}) + "\n"
                                                       for i, s in enumerate(["No-Hint", "Sparse-Hint"])))
    data = load_sft_data(str(tmp_path / "run"))
    assert data.ids == ["p0", "p1"] and data.states == {"No-Hint": 1, "Sparse-Hint": 1}


@pytest.mark.parametrize("content, message", [
    ('{"a": 1}', "expected a JSON list"),
    ('[{"instruction": "x"}]', "record 0: expected string fields"),
    ("[", "not valid JSON"),
])
def test_bad_datasets_are_named(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(HinttuneError, match=message):
        load_sft_data(str(path))
    with pytest.raises(HinttuneError, match="no dataset in it"):
        load_sft_data(str(tmp_path))


def test_every_folder_export_writes_is_a_training_dataset(tmp_path):
    """What export, the baselines and compare produce, train takes: the run directory, its
    export/ and each export/baselines/NAME/ (before, only the run directory was taken)."""
    pytest.importorskip("math_verify")
    from hinttune.construction.pipeline import build
    from hinttune.core.config import validate_config
    from test_pipeline import config_dict

    data = config_dict(tmp_path)
    data["assemble"] = {"baselines": ["full", "two-state"]}
    data["export"] = {"formats": ["alpaca", "messages"]}
    build(validate_config(data))
    export = tmp_path / "run" / "export"
    for folder, name in [(tmp_path / "run", "hint_tuning"), (export, "hint_tuning"),
                         (export / "baselines" / "full", "full"), (export / "baselines" / "two-state", "two-state")]:
        loaded = load_sft_data(str(folder))
        assert Path(loaded.source).name == f"{name}.json" and sum(loaded.states.values()) == len(loaded.records) > 0
    (export / "baselines" / "full" / "full.json").unlink()
    (export / "baselines" / "full" / "dataset_info.json").unlink()
    assert load_sft_data(str(export / "baselines" / "full")).source.endswith("full.messages.jsonl")


def test_prompt_is_the_user_turn_and_completion_the_whole_target():
    row = prompt_completion(RECORDS[1])
    assert row == {"prompt": [{"role": "user", "content": "What is 3+3?"}],
                   "completion": [{"role": "assistant", "content": RECORDS[1]["output"]}]}
    assert prompt_completion({**RECORDS[0], "input": "extra"})["prompt"][0]["content"] == "What is 2+2?\n\nextra"


def test_overlong_samples_are_dropped_and_named():
    samples = [{"input_ids": list(range(n)), "completion_mask": [1] * n} for n in (40, 66)]
    kept, dropped = drop_overlong(samples, ["p0", "p1"], max_length=40)
    assert kept == samples[:1] and dropped == ["p1 (66 tokens)"]


@pytest.mark.parametrize("ratio, steps, warm", [(0.05, 3, 0), (0.05, 100, 5), (0.05, 39, 1), (0.0, 10, 0)])
def test_warmup_only_when_there_are_steps_to_warm(ratio, steps, warm):
    """transformers rounds the warmup up, so 5% of 3 steps ran the first step at learning rate 0."""
    from hinttune.training.sft import warmup_steps

    assert warmup_steps(TrainConfig(warmup_ratio=ratio), steps) == warm


def test_augmentation_keeps_originals_and_is_seeded():
    out = augment_records(RECORDS, copies=2, seed=1)
    assert len(out) == 6 and out[0] == RECORDS[0] and out[3] == RECORDS[1]
    variants = [r["instruction"] for r in out[1:3]]
    assert len(set(variants)) == 2 and all("What is 2+2?" in v for v in variants)
    assert all(r["output"] == RECORDS[0]["output"] for r in out[:3])
    assert out == augment_records(RECORDS, copies=2, seed=1)
    assert augment_records(RECORDS[1:], copies=2, seed=1) == out[3:]  # per record, not per position
    assert "\\boxed{}" in DEFAULT_TEMPLATES[3].format(problem="x")


def test_llamafactory_export_parses_and_names_the_columns(tmp_path, alpaca):
    cfg = TrainConfig(data=str(alpaca), model="Qwen/Qwen3-4B-Thinking-2507", output_dir=Path("saves/ht"))
    files = llamafactory_recipe(cfg, tmp_path / "lf", gpus=8)  # template from the model's name
    recipe = yaml.safe_load(files["recipe"].read_text())
    # the DeepSpeed config ships beside the recipe, by absolute path (no LLaMA-Factory checkout needed)
    ds = Path(recipe["deepspeed"])
    assert ds.is_absolute() and json.loads(ds.read_text())["zero_optimization"]["stage"] == 3
    info = json.loads(files["dataset_info"].read_text())
    assert info == {"hint_tuning": {"file_name": "hint_tuning.json",
                                    "columns": {"prompt": "instruction", "query": "input", "response": "output"}}}
    assert json.loads(files["data"].read_text()) == RECORDS
    assert recipe["dataset"] == "hint_tuning" and Path(recipe["dataset_dir"]) == (tmp_path / "lf").resolve()
    assert (recipe["stage"], recipe["finetuning_type"], recipe["template"]) == ("sft", "full", "qwen3")
    assert recipe["per_device_train_batch_size"] * 8 * recipe["gradient_accumulation_steps"] == 16
    assert (recipe["learning_rate"], recipe["num_train_epochs"], recipe["cutoff_len"]) == (1e-5, 5, 32768)
    assert recipe["train_on_prompt"] is False
    assert Path(recipe["output_dir"]).is_absolute() and Path(recipe["output_dir"]) == Path("saves/ht").resolve()


def test_llamafactory_on_one_gpu_needs_no_deepspeed(tmp_path, alpaca):
    """ZeRO-3 only shards across GPUs: on one it only slows the run down; asked for, it is written."""
    model = tmp_path / "my-model"
    model.mkdir()
    cfg = TrainConfig(data=str(alpaca), model=str(model), output_dir=Path("out"))
    one = yaml.safe_load(llamafactory_recipe(cfg, tmp_path / "one", template="qwen3", gpus=1)["recipe"].read_text())
    assert "deepspeed" not in one and not (tmp_path / "one" / "ds_z3_config.json").exists()
    assert one["model_name_or_path"] == str(model.resolve())  # a local model, by absolute path
    asked = llamafactory_recipe(cfg, tmp_path / "asked", template="qwen3", gpus=1, deepspeed=True)["recipe"]
    assert "deepspeed" in yaml.safe_load(asked.read_text())


@pytest.mark.parametrize("name, key, value", [("ddp", "distributed_type", "MULTI_GPU"),
                                              ("fsdp", "distributed_type", "FSDP"),
                                              ("zero3", "distributed_type", "DEEPSPEED")])
def test_shipped_accelerate_configs(name, key, value):
    from typer.testing import CliRunner

    from hinttune.cli import app

    result = CliRunner().invoke(app, ["accelerate-config", name])
    config = yaml.safe_load(Path(result.output.strip()).read_text())
    assert config[key] == value and config["mixed_precision"] == "bf16"
    if name == "fsdp":
        assert config["fsdp_config"]["fsdp_sharding_strategy"] == "FULL_SHARD"
    if name == "zero3":
        assert config["deepspeed_config"]["zero_stage"] == 3


@pytest.mark.parametrize("model, template", [("Qwen/Qwen3-4B-Thinking-2507", "qwen3"),
                                             ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseekr1"),
                                             ("meta-llama/Llama-3.1-8B-Instruct", "llama3"),
                                             ("HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2")])
def test_llamafactory_template_follows_the_model(model, template):
    from hinttune.training.llamafactory import template_for

    assert template_for(model) == template


def test_llamafactory_unknown_model_asks_for_a_template(tmp_path, alpaca):
    from hinttune.core.errors import HinttuneError

    cfg = TrainConfig(data=str(alpaca), model="my-org/mystery-7b")
    with pytest.raises(HinttuneError, match="--template"):
        llamafactory_recipe(cfg, tmp_path / "lf")


def test_boxed_phrasings_only_for_boxed_answers():
    plain = {"instruction": "What is 2+2?", "input": "", "output": "<think>\nx\n</think>\n\n4"}
    boxed = {**plain, "instruction": "What is 3+3?", "output": "<think>\nx\n</think>\n\n\\boxed{6}"}
    out = augment_records([plain, boxed], copies=len(DEFAULT_TEMPLATES), seed=0)
    plain_variants = [r["instruction"] for r in out if r["output"] == plain["output"]]
    boxed_variants = [r["instruction"] for r in out if r["output"] == boxed["output"]]
    assert not any("boxed" in v for v in plain_variants) and len(plain_variants) == len(DEFAULT_TEMPLATES)
    assert any("boxed" in v for v in boxed_variants) and len(boxed_variants) == len(DEFAULT_TEMPLATES) + 1


def test_trainer_refuses_an_export_cut_short(tmp_path):
    from hinttune.core.errors import HinttuneError
    from hinttune.training.sft import load_sft_data

    export = tmp_path / "export"
    export.mkdir()
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
            for i in range(3)]
    (export / "hint_tuning.messages.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    (export / "hint_tuning.meta.jsonl").write_text("".join(
        json.dumps({"id": str(i), "state": "No-Hint"}) + "\n" for i in range(3)))
    with pytest.raises(HinttuneError, match="does not match its sidecar .*2 records, the sidecar lists 3"):
        load_sft_data(str(export / "hint_tuning.messages.jsonl"))


def test_an_export_of_equal_size_from_another_run_is_refused(tmp_path, caplog):
    """The sidecar carries each record's digest: same count, other data -> refused."""
    from hinttune.core.fingerprint import record_digest

    export = tmp_path / "export"
    export.mkdir()
    (export / "hint_tuning.meta.jsonl").write_text("".join(json.dumps(
        {"id": f"p{i}", "state": "No-Hint", "record_sha256": record_digest(r)}) + "\n"
        for i, r in enumerate(RECORDS)))
    data = export / "hint_tuning.json"
    data.write_text(json.dumps(RECORDS))
    assert load_sft_data(str(data)).ids == ["p0", "p1"]
    other = [RECORDS[0], {**RECORDS[1], "output": RECORDS[1]["output"].replace("6", "7")}]
    data.write_text(json.dumps(other))
    with pytest.raises(HinttuneError, match=r"does not match its sidecar .*record 1 differs, problem p1"):
        load_sft_data(str(data))
    (export / "hint_tuning.meta.jsonl").unlink()  # no sidecar: said, then trained as it is
    with caplog.at_level("WARNING"):
        assert len(load_sft_data(str(data)).records) == 2
    assert "nothing can check" in caplog.text


def test_the_loss_record_is_the_last_logged_loss_and_the_steps_run(tmp_path):
    from hinttune.training.sft import loss_record, write_loss_files

    history = [{"loss": 2.0, "step": 13, "learning_rate": 1e-5}, {"loss": 1.5, "step": 18, "grad_norm": 0.7},
               {"train_loss": 0.0, "step": 18}]  # a resumed run's mean covers only its own steps
    assert loss_record(history, start_step=12, global_step=18) == {
        "last_loss": 1.5, "last_loss_step": 18, "steps_run": 6, "total_steps": 18}
    assert loss_record([], 18, 18)["last_loss"] is None
    files = write_loss_files(tmp_path, history)
    assert (tmp_path / "loss.csv").read_text().splitlines() == [
        "step,epoch,loss,learning_rate,grad_norm", "13,,2.0,1e-05,", "18,,1.5,,0.7"]
    assert files[0] == tmp_path / "loss.csv"


def test_training_logs_to_tensorboard_when_it_is_installed(monkeypatch):
    import importlib.util

    from hinttune.core.config import TrainConfig
    from hinttune.training.sft import report_to

    assert TrainConfig().report_to == ["auto"]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "tensorboard" else real(name))
    assert report_to(["auto"]) == ["tensorboard"]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if "tensorboard" in name.lower() else real(name))
    assert report_to(["auto"]) == ["none"]
    assert report_to(["wandb"]) == ["wandb"]


def test_report_to_from_the_cli(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hinttune import cli

    seen = {}
    monkeypatch.setattr("hinttune.training.sft.train", lambda cfg: seen.setdefault("cfg", cfg) and {
        "steps": 1, "records": 1, "losses": [0.5], "resumed_from": None})
    result = CliRunner().invoke(cli.app, ["train", "-d", "x.json", "-m", "m", "-o", str(tmp_path),
                                          "--report-to", "wandb,tensorboard"])
    assert result.exit_code == 0, result.output
    assert seen["cfg"].report_to == ["wandb", "tensorboard"] and "last logged loss 0.5000" in result.output


def test_with_no_gpu_training_runs_on_the_cpu_and_says_so(monkeypatch, capsys):
    import torch

    from hinttune.core.config import TrainConfig
    from hinttune.training.sft import on_this_machine

    cfg = TrainConfig(data="d.json", model="m", output_dir="o")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    moved = on_this_machine(cfg)
    assert (moved.use_cpu, moved.bf16, moved.gradient_checkpointing) == (True, False, False)
    assert "no GPU found: training on the CPU" in capsys.readouterr().err  # the console is stderr
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert on_this_machine(cfg) == cfg


def test_a_model_that_cannot_be_loaded_is_one_line(tmp_path):
    from transformers import AutoTokenizer

    from hinttune.training.sft import _load

    with pytest.raises(HinttuneError, match=r"could not load the tokenizer of '.*nowhere'"):
        _load(AutoTokenizer, str(tmp_path / "nowhere"), "tokenizer")


def test_the_disk_a_run_will_use_is_said_before_it_starts():
    import torch

    from hinttune.core.config import TrainConfig
    from hinttune.training.sft import disk_note

    model = torch.nn.Linear(1024, 1024)  # 1,049,600 fp32 parameters: 4 MB, optimizer 8 MB
    cfg = TrainConfig(data="d.json", model="m", output_dir="out", num_train_epochs=5, global_batch_size=16)
    note = disk_note(cfg, model, rows=14)  # one step an epoch: five saves, two kept
    assert note.startswith("5 steps; 5 checkpoint(s) (epoch) of 0.0 GB") and "2 kept" in note
    big = torch.nn.Linear(16384, 16384)  # 1 GB of weights, 2 GB of optimizer state
    assert "of 3.0 GB each (weights 1.0 GB + optimizer state 2.0 GB), 2 kept: up to 6.0 GB" in \
        disk_note(cfg, big, rows=14)
