"""Fine-tune the real small model on CPU: loss only on the target, loss goes down on repeated
data, the saved model reloads and generates, an interrupted run resumes from its checkpoint."""

import json

import pytest
from typer.testing import CliRunner

from hinttune.cli import app
from hinttune.construction.pipeline import build
from hinttune.core.config import TrainConfig, validate_config

pytestmark = pytest.mark.slow
pytest.importorskip("trl")


@pytest.fixture(scope="module")
def checkpoint(smollm_hf):
    return smollm_hf


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A tiny dataset written by the pipeline (scripted models, so it is quick)."""
    from test_pipeline import config_dict

    folder = tmp_path_factory.mktemp("data")
    build(validate_config(config_dict(folder)))
    return folder / "run"


def config(checkpoint, dataset, out, **kw):
    base = dict(data=str(dataset), model=str(checkpoint), output_dir=out, use_cpu=True, bf16=False,
                gradient_checkpointing=False, global_batch_size=1, learning_rate=3e-4,
                max_length=512, save_strategy="no", warmup_ratio=0.0, lr_scheduler_type="constant")
    return TrainConfig(**{**base, **kw})


def test_prompt_tokens_carry_no_loss(checkpoint, dataset, tmp_path):
    from hinttune.training.sft import build_trainer

    trainer, data = build_trainer(config(checkpoint, dataset, tmp_path / "out"))
    tok = trainer.processing_class
    batch = trainer.data_collator([trainer.train_dataset[1]])
    labels, ids = batch["labels"][0], batch["input_ids"][0]
    trained = tok.decode(ids[labels != -100])
    prompt = tok.decode(ids[labels == -100])
    assert prompt.endswith("<|im_start|>assistant\n") and "beta: 2+2" in prompt
    assert trained.startswith("<think>\nI may need some deep thinking. ") and "beta" not in trained
    assert trained.rstrip().endswith("so it is 4.<|im_end|>")


def test_train_reload_generate_and_resume(checkpoint, dataset, tmp_path):
    out = tmp_path / "ht"
    # interrupted after 4 of 8 steps (max_steps=4), with a checkpoint every 2 steps
    runner = CliRunner()
    common = ["train", "-d", str(dataset), "-m", str(checkpoint), "-o", str(out), "--cpu",
              "--set", "global_batch_size=1", "--set", "learning_rate=3e-4", "--set", "max_length=512",
              "--set", "save_strategy=steps", "--set", "save_steps=2", "--set", "warmup_ratio=0",
              "--set", "lr_scheduler_type=constant", "--set", "num_train_epochs=8"]
    first = runner.invoke(app, common + ["--set", "max_steps=4"])
    assert first.exit_code == 0, first.output
    assert (out / "checkpoint-4").is_dir()
    second = runner.invoke(app, common + ["--set", "max_steps=8"])
    assert second.exit_code == 0, second.output
    assert "resumed from" in second.output and "checkpoint-4" in second.output
    assert "trained 8 steps" in second.output
    state = json.loads((out / "checkpoint-8" / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == 8 and all(loss == loss and loss < 20 for loss in losses)  # finite
    # 3 records repeated: the loss of the last pass is below that of the first
    assert sum(losses[-3:]) < sum(losses[:3])
    card = (out / "README.md").read_text()
    assert f"base_model: {checkpoint}" in card and "1e-05" not in card and "0.0003" in card
    # the last logged loss and the steps the resumed invocation ran, not the run's mean
    assert "steps: 8 (4 run by the last invocation)" in card and f"{losses[-1]:.4f} (step 8)" in card
    assert len((out / "loss.csv").read_text().splitlines()) == 1 + 8 and (out / "loss.png").exists()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    prompt = tok.apply_chat_template([{"role": "user", "content": "beta: 2+2"}], tokenize=False,
                                     add_generation_prompt=True)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    new = model.generate(**ids, max_new_tokens=12, do_sample=False)[0, ids["input_ids"].shape[1]:]
    assert tok.decode(new, skip_special_tokens=True).startswith("<think>")


def test_lora_adapters(checkpoint, dataset, tmp_path):
    from hinttune.training.sft import train

    result = train(config(checkpoint, dataset, tmp_path / "lora", max_steps=2,
                          lora={"enabled": True, "r": 4, "alpha": 8}))
    assert result["steps"] == 2 and (tmp_path / "lora" / "adapter_config.json").exists()


def test_a_trained_model_reads_the_same_in_transformers_4(checkpoint, dataset, tmp_path):
    """Saved by transformers 5 (what vLLM 0.33 pins), read by 4.57 (older vLLM, LLaMA-Factory,
    lighteval setups): the same RoPE base, tokenizer, prompt ids and next-token logits."""
    import subprocess
    import sys
    from pathlib import Path

    from conftest import side_python
    from hinttune.training.sft import train

    out = tmp_path / "ht"
    train(config(checkpoint, dataset, out, max_steps=1))
    script = str(Path(__file__).with_name("read_checkpoint.py"))
    old = subprocess.run([str(side_python("transformers4-venv", "transformers==4.57.1")), script, str(out)],
                         capture_output=True, text=True, timeout=600)
    new = subprocess.run([sys.executable, script, str(out)], capture_output=True, text=True, timeout=600)
    assert old.returncode == 0, old.stderr[-2000:]
    assert new.returncode == 0, new.stderr[-2000:]
    read_old, read_new = (json.loads(r.stdout.strip().splitlines()[-1]) for r in (old, new))
    assert read_new["rope_theta"] == 100000.0
    assert read_old == read_new
