"""A re-run takes finished probe searches as they are; any change to what decided one, a
search that could not finish, or a generation gone from the store makes it run again."""

import pytest

from hinttune.construction import pipeline
from hinttune.construction.pipeline import build
from hinttune.core.config import validate_config
from hinttune.core.store import RunStore
from test_pipeline import config_dict, records

pytest.importorskip("math_verify")


@pytest.fixture
def probed(monkeypatch):
    """The problems each build hands to the probe search (what was not recalled)."""
    calls = []
    real = pipeline.run_probes

    def spy(cfg, store, grader, pool, targets, role="instruct"):
        calls.append(sorted(t.problem.problem.split(":")[0] for t in targets))
        return real(cfg, store, grader, pool, targets, role)

    monkeypatch.setattr(pipeline, "run_probes", spy)
    return calls


def test_a_rerun_recalls_finished_searches_with_the_same_dataset(tmp_path, probed):
    cfg = validate_config(config_dict(tmp_path))
    first = build(cfg)
    dataset = records(tmp_path / "run")
    again = build(cfg)
    assert probed == [["beta", "delta", "gamma"], []]
    assert records(tmp_path / "run") == dataset
    assert again.summary["probing"] == first.summary["probing"]
    assert {pid: (o.k_star, [(a.k, a.text, a.verdict) for a in o.attempts]) for pid, o in again.probes.items()} \
        == {pid: (o.k_star, [(a.k, a.text, a.verdict) for a in o.attempts]) for pid, o in first.probes.items()}


def test_what_decided_a_search_changing_runs_it_again(tmp_path, probed):
    build(validate_config(config_dict(tmp_path)))
    build(validate_config(config_dict(tmp_path, probe={"verify": True})))
    build(validate_config(config_dict(tmp_path, seed=7)))
    assert probed[1:] == [["beta", "delta", "gamma"]] * 2


def test_an_unfinished_search_or_a_lost_generation_is_searched_again(tmp_path, probed, monkeypatch):
    from hinttune.core.backends.fake import FakeBackend

    cfg = validate_config(config_dict(tmp_path))
    real = FakeBackend._reply
    # an engine error on gamma's first probe, with the configuration unchanged
    monkeypatch.setattr(FakeBackend, "_reply", lambda self, prompt: "!fail" if prompt.startswith(
        "<|user|>gamma") and prompt.endswith("<|assistant|>First idea. ") else real(self, prompt))
    failed = build(cfg)
    assert {a.problem.split(":")[0]: a.state for a in failed.assignments}["gamma"] == "incomplete"
    monkeypatch.setattr(FakeBackend, "_reply", real)
    build(cfg)
    assert probed[1] == ["gamma"]  # beta and delta finished the first time
    with RunStore(tmp_path / "run") as store:  # a generation of beta's search is gone
        bodies = store.stage_results("probe")
        beta = next(body for _, body in bodies.values() if body["k_star"] == 2)
        store.db.execute("DELETE FROM generations WHERE key=?", (beta["attempts"][0][1],))
    rebuilt = build(cfg)
    assert probed[2] == ["beta"]
    assert {a.problem.split(":")[0]: (a.state, a.k_star) for a in rebuilt.assignments}["beta"] == ("Sparse-Hint", 2)
