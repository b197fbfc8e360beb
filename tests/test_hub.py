"""Hub publishing with no network: the card's content, and the upload and the read-back
through huggingface_hub's own API, its HTTP layer served by a local stand-in for the Hub."""

import json

import pytest
from typer.testing import CliRunner

from hinttune.cli import app
from hinttune.construction.outputs.hub import dataset_card
from hinttune.construction.pipeline import build
from hinttune.core.config import validate_config

from hub_server import HubServer
from test_pipeline import config_dict

pytest.importorskip("math_verify")
pytest.importorskip("huggingface_hub")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub")
    build(validate_config(config_dict(tmp)))
    return tmp / "run"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    server = HubServer()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_never_logged_123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield server
    server.close()


def test_the_card_says_what_the_dataset_is(run):
    card = dataset_card(run, "me/ht-demo")
    assert card.startswith("---\nconfigs:") and "path: hint_tuning.json" in card
    assert "| No-Hint | 1 |" in card and "| Sparse-Hint | 1 |" in card and "| Full-Hint | 1 |" in card
    assert "K*=  2 █" in card and "`think` (fake)" in card and "`instruct` (fake)" in card
    assert "grading: math; policy: paper" in card and "hinttune train -d hf://me/ht-demo" in card
    assert "hinttune " in card.split("made with:")[1].split("\n")[0]


def test_push_then_train_reads_it_back(run, hub, tmp_path):
    out = CliRunner().invoke(app, ["push", str(run), "me/ht-demo", "--private", "--revision", "v1"])
    assert out.exit_code == 0, out.output
    repo = hub.hub.repos["me/ht-demo"]
    assert repo["private"] is True
    files = repo["branches"]["v1"]
    assert {"README.md", "hint_tuning.json", "hint_tuning.messages.jsonl", "hint_tuning.meta.jsonl",
            "dataset_info.json"} <= set(files) and any(name.startswith("hf/") for name in files)
    assert files["hint_tuning.json"] == (run / "export" / "hint_tuning.json").read_bytes()
    assert "hf_test_token" not in out.output

    from hinttune.training.sft import load_sft_data

    data = load_sft_data("hf://me/ht-demo@v1")  # what `hinttune train -d hf://...` reads
    assert [r["output"] for r in data.records] == [r["output"] for r in
                                                   json.loads((run / "export" / "hint_tuning.json").read_text())]
    assert data.states == {"No-Hint": 1, "Sparse-Hint": 1, "Full-Hint": 1}


def test_a_repository_that_is_not_there_is_one_line(hub):
    from hinttune.core.errors import HinttuneError
    from hinttune.training.sft import load_sft_data

    with pytest.raises(HinttuneError, match=r"hf://me/nothing: "):
        load_sft_data("hf://me/nothing")
