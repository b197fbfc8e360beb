"""Generations are keyed by the weights a local folder holds, not by its path: retraining into
the same folder never reuses the old model's results."""

import json
import os

import pytest
from typer.testing import CliRunner

from hinttune.cli import app
from hinttune.core.backends import make_backend
from hinttune.core.config import OpenAIModel, TransformersModel
from hinttune.core.fingerprint import weights_fingerprint
from hinttune.core.store import RunStore

pytest.importorskip("math_verify")


def model_folder(tmp_path, content=b"weights-1"):
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "model.safetensors").write_bytes(content)
    (folder / "config.json").write_text("{}")
    return folder


def test_the_fingerprint_follows_the_weights_not_the_path(tmp_path):
    folder = model_folder(tmp_path)
    first = weights_fingerprint(str(folder))
    (folder / "trainer_state.json").write_text("{}")  # not a weight: same model
    assert weights_fingerprint(str(folder)) == first
    (folder / "model.safetensors").write_bytes(b"weights-2 longer")
    assert weights_fingerprint(str(folder)) != first
    assert weights_fingerprint("Qwen/Qwen3-4B-Thinking-2507") is None  # a hub id: its name


def test_backend_identity_carries_it(tmp_path):
    folder = model_folder(tmp_path)
    local = make_backend(TransformersModel(backend="transformers", model=str(folder)))
    assert local.identity()["weights"] == weights_fingerprint(str(folder))
    served = make_backend(OpenAIModel(backend="openai", model="tuned", revision="step-18"))
    assert served.identity()["revision"] == "step-18" and "weights" not in served.identity()


def test_eval_after_retraining_into_the_same_folder_is_not_stale(tmp_path):
    folder = model_folder(tmp_path)
    bench = tmp_path / "mini.jsonl"
    bench.write_text(json.dumps({"question": "one plus one", "answer": "2"}) + "\n")
    args = ["eval", "-m", str(folder), "-b", "fake", "--benchmarks", "mini", "--data-file",
            f"mini={bench}", "--n", "2", "-o", str(tmp_path / "ev"),
            "--set", "model.default_reply=\\boxed{2}"]
    assert CliRunner().invoke(app, args).exit_code == 0
    before = json.loads((tmp_path / "ev" / "results.json").read_text())
    (folder / "model.safetensors").write_bytes(b"weights after more steps")
    os.utime(folder / "model.safetensors", ns=(1, 1))
    assert CliRunner().invoke(app, args).exit_code == 0
    after = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert after["model_fingerprint"] != before["model_fingerprint"] and after["hinttune_version"]
    with RunStore(tmp_path / "ev") as store:  # the new weights' samples were generated afresh
        assert store.db.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 4
