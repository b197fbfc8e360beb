"""A re-run takes finished probe searches as they are; any change to what decided one, a
search that could not finish, or a generation gone from the store makes it run again."""

import pytest

from hinttune.construction.probe.search import Probing
from hinttune.construction.pipeline import build
from hinttune.core.config import validate_config
from hinttune.core.store import RunStore
from test_pipeline import config_dict, records

pytest.importorskip("math_verify")


class Searched(list):
    """The problems each build searched (what was not recalled), one sorted list per build."""

    def build(self, cfg):
        self.append([])
        try:
            return build(cfg)
        finally:
            self[-1].sort()


@pytest.fixture
def probed(monkeypatch):
    calls = Searched()
    real = Probing.search

    async def spy(self, target):
        calls[-1].append(target.problem.problem.split(":")[0])
        return await real(self, target)

    monkeypatch.setattr(Probing, "search", spy)
    return calls


def test_a_rerun_recalls_finished_searches_with_the_same_dataset(tmp_path, probed):
    cfg = validate_config(config_dict(tmp_path))
    first = probed.build(cfg)
    dataset = records(tmp_path / "run")
    again = probed.build(cfg)
    assert probed == [["beta", "delta", "gamma"], []]
    assert records(tmp_path / "run") == dataset
    assert again.summary["probing"] == first.summary["probing"]
    assert {pid: (o.k_star, [(a.k, a.text, a.verdict) for a in o.attempts]) for pid, o in again.probes.items()} \
        == {pid: (o.k_star, [(a.k, a.text, a.verdict) for a in o.attempts]) for pid, o in first.probes.items()}


def test_what_decided_a_search_changing_runs_it_again(tmp_path, probed):
    probed.build(validate_config(config_dict(tmp_path)))
    probed.build(validate_config(config_dict(tmp_path, probe={"verify": True})))
    probed.build(validate_config(config_dict(tmp_path, seed=7)))
    assert probed[1:] == [["beta", "delta", "gamma"]] * 2


def test_an_unfinished_search_or_a_lost_generation_is_searched_again(tmp_path, probed, monkeypatch):
    from hinttune.core.backends.fake import FakeBackend

    cfg = validate_config(config_dict(tmp_path))
    real = FakeBackend._reply
    # an engine error on gamma's first probe, with the configuration unchanged
    monkeypatch.setattr(FakeBackend, "_reply", lambda self, prompt: "!fail" if prompt.startswith(
        "<|user|>gamma") and prompt.endswith("<|assistant|>First idea. ") else real(self, prompt))
    failed = probed.build(cfg)
    assert {a.problem.split(":")[0]: a.state for a in failed.assignments}["gamma"] == "incomplete"
    monkeypatch.setattr(FakeBackend, "_reply", real)
    probed.build(cfg)
    assert probed[1] == ["gamma"]  # beta and delta finished the first time
    with RunStore(tmp_path / "run") as store:  # a generation of beta's search is gone
        bodies = store.stage_results("probe")
        beta = next(body for _, body in bodies.values() if body["k_star"] == 2)
        store.db.execute("DELETE FROM generations WHERE key=?", (beta["attempts"][0][1],))
    rebuilt = probed.build(cfg)
    assert probed[2] == ["beta"]
    assert {a.problem.split(":")[0]: (a.state, a.k_star) for a in rebuilt.assignments}["beta"] == ("Sparse-Hint", 2)
