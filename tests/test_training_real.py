"""Fine-tune the real small model on CPU: loss only on the target, loss goes down on repeated
data, the saved model reloads and generates, an interrupted run resumes from its checkpoint."""

import json

import pytest
from typer.testing import CliRunner

from hinttune.cli import app
from hinttune.construction.pipeline import build
from hinttune.core.config import TrainConfig, validate_config
from templates import TEMPLATES

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


def with_template(checkpoint, folder, template):
    """The demo model with another chat template (its files linked, not copied)."""
    folder.mkdir()
    for f in checkpoint.iterdir():
        if f.name != "chat_template.jinja":
            (folder / f.name).symlink_to(f)
    (folder / "chat_template.jinja").write_text(TEMPLATES[template])
    return folder


@pytest.mark.parametrize("template", ["chatml", "qwen3-thinking-2507", "deepseek-r1-distill"])
def test_every_target_is_under_the_loss_whatever_the_template(checkpoint, dataset, tmp_path, template):
    """Through the trainer itself: the labels of every sample, decoded, are its target whole
    (less the <think> a template's prompt opens) and the end of turn; before, under a
    DeepSeek-R1-Distill template, TRL trained on what follows </think> alone."""
    from hinttune.training.sft import build_trainer, load_sft_data

    model = with_template(checkpoint, tmp_path / "model", template)
    trainer, data = build_trainer(config(model, dataset, tmp_path / "out"))
    tok = trainer.processing_class
    opener = data.chat_format.opener
    assert len(trainer.train_dataset) == len(load_sft_data(str(dataset)).records) == 3
    for i, record in enumerate(data.records):
        batch = trainer.data_collator([trainer.train_dataset[i]])
        labels, ids = batch["labels"][0], batch["input_ids"][0]
        trained, prompt = tok.decode(ids[labels != -100]), tok.decode(ids[labels == -100])
        assert record["instruction"] in prompt and prompt.endswith(opener)
        assert opener + trained == record["output"] + data.chat_format.end_of_turn
    assert "Trained with each record's instruction" in model_card_of(trainer, data, model, tmp_path)


def model_card_of(trainer, data, model, tmp_path):
    from hinttune.training.sft import model_card

    return model_card(config(model, tmp_path, tmp_path / "out"), data, trainer)


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


def test_loss_weighting_sequence_averages_each_samples_mean(checkpoint, dataset, tmp_path):
    """s1's loss: the mean over samples of each sample's mean token loss, whatever their
    lengths; token (TRL's): the mean over all target tokens of the batch."""
    import torch

    from hinttune.training.sft import build_trainer

    found = {}
    for weighting in ("sequence", "token"):
        trainer, _ = build_trainer(config(checkpoint, dataset, tmp_path / weighting, loss_weighting=weighting,
                                          per_device_batch_size=3, global_batch_size=3))
        model = trainer.model.eval()
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
        with torch.no_grad():
            found[weighting] = float(trainer.compute_loss(model, dict(batch)))
            sums, counts = [], []
            for i in range(3):
                one = trainer.data_collator([trainer.train_dataset[i]])
                logits = model(input_ids=one["input_ids"], attention_mask=one["attention_mask"]).logits[0, :-1]
                labels = one["labels"][0, 1:]
                losses = torch.nn.functional.cross_entropy(logits[labels != -100], labels[labels != -100],
                                                           reduction="none")
                sums.append(float(losses.sum()))
                counts.append(len(losses))
    assert len(set(counts)) > 1  # samples of different lengths, or the two would agree
    per_sample = sum(s / c for s, c in zip(sums, counts)) / 3
    assert found["sequence"] == pytest.approx(per_sample, rel=1e-4)
    assert found["token"] == pytest.approx(sum(sums) / sum(counts), rel=1e-4)


@pytest.mark.parametrize("dtype, changed", [("float32", lambda share: share > 0.9),
                                            ("auto", lambda share: share < 0.2)])
def test_one_step_at_lr_1e5_changes_the_weights(checkpoint, dataset, tmp_path, dtype, changed):
    """A bf16 checkpoint trained with bf16 compute (CPU autocast here): with fp32 master weights
    (the default) one AdamW step at lr 1e-5 changes nearly every weight; holding the weights
    in the checkpoint's bf16 (what dtype=auto did) rounds most changes away."""
    import torch

    from hinttune.training.sft import build_trainer

    bf16 = tmp_path / "bf16"
    if not bf16.exists():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.bfloat16).save_pretrained(bf16)
        AutoTokenizer.from_pretrained(checkpoint).save_pretrained(bf16)
    trainer, _ = build_trainer(config(bf16, dataset, tmp_path / "out", torch_dtype=dtype, bf16=True,
                                      learning_rate=1e-5, max_steps=1, max_length=128, overlong="truncate"))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    moved = sum(int((after[n].detach() != b).sum()) for n, b in before.items())
    total = sum(b.numel() for b in before.values())
    assert changed(moved / total), f"{moved / total:.1%} of the weights changed"


def test_quick_mode_saves_no_checkpoint_and_the_card_says_what_ran(checkpoint, dataset, tmp_path):
    out = tmp_path / "quick"
    result = CliRunner().invoke(app, ["train", "-d", str(dataset), "-m", str(checkpoint), "-o", str(out), "--cpu",
                                      "--quick", "--set", "max_steps=3", "--set", "global_batch_size=1",
                                      "--set", "max_length=512", "--set", "learning_rate=3e-4"])
    assert result.exit_code == 0, result.output
    assert "trained 3 steps" in result.output and not list(out.glob("checkpoint-*"))
    assert (out / "model.safetensors").exists()
    card = (out / "README.md").read_text()
    assert "as run: 3 optimizer steps" in card and "bf16" not in card.split("## Full")[0] and "global batch 1: 1 per device x 1 process(es)" in card
    assert "0 warmup step(s)" in card and "checkpoints: none (quick test)" in card
    assert "weighted per sequence" in card and "<|im_start|>user\nalpha: 1+1<|im_end|>" in card
    assert "5 epochs" not in card and "Please reason step by step" not in card
