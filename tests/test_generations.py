import pytest

from hinttune.core.backends import BackendPool, make_backend
from hinttune.core.backends.base import Request
from hinttune.core.config import FakeModel, Sampling
from hinttune.core.generations import Job, JobStream, run_jobs
from hinttune.core.store import RunStore


class Counting:
    """Wraps a backend and counts the requests it is asked to generate."""

    def __init__(self, backend):
        self.backend, self.sent = backend, []
        self.cfg = backend.cfg

    def identity(self):
        return self.backend.identity()

    def prompt_text(self, request):
        return self.backend.prompt_text(request)

    def generate(self, requests):
        self.sent.extend(requests)
        return self.backend.generate(requests)

    def take_counts(self):
        return self.backend.take_counts()


def fake(**kw):
    return Counting(make_backend(FakeModel(backend="fake", model="f", **kw)))


def jobs(n, temperature=0.7, text="q"):
    return [Job(f"p{i}", 0, Request([{"role": "user", "content": f"{text}{i}"}],
                                    Sampling(temperature=temperature, max_tokens=50)))
            for i in range(n)]


def test_rerun_generates_nothing_and_changed_params_recompute(tmp_path):
    with RunStore(tmp_path) as store:
        backend = fake()
        first = run_jobs(store, backend, "attempts", "think", jobs(4), run_seed=0)
        assert len(first) == 4 and len(backend.sent) == 4
        again = run_jobs(store, backend, "attempts", "think", jobs(4), run_seed=0)
        assert len(backend.sent) == 4 and again.keys() == first.keys()
        run_jobs(store, backend, "attempts", "think", jobs(5), run_seed=0)
        assert len(backend.sent) == 5  # only the new problem
        run_jobs(store, backend, "attempts", "think", jobs(5, temperature=0.6), run_seed=0)
        assert len(backend.sent) == 10  # a sampling change recomputes everything it touches
        run_jobs(store, backend, "attempts", "think", jobs(5, temperature=0.6), run_seed=1)
        assert len(backend.sent) == 15  # so does the run seed


def test_seeds_are_derived_from_the_request(tmp_path):
    with RunStore(tmp_path) as store:
        a, b = jobs(2), jobs(2)
        run_jobs(store, fake(), "s", "r", a, run_seed=0)
        run_jobs(store, fake(), "s", "r2", b, run_seed=0)
        assert [j.request.seed for j in a] == [j.request.seed for j in b]
        assert a[0].request.seed != a[1].request.seed


def test_identical_requests_are_generated_once(tmp_path):
    twins = jobs(1) + [Job("p_twin", 0, jobs(1)[0].request)]
    with RunStore(tmp_path) as store:
        backend = fake()
        out = run_jobs(store, backend, "attempts", "think", twins, run_seed=0)
        assert len(backend.sent) == 1 and set(out) == {("p0", 0), ("p_twin", 0)}


def test_failures_are_recorded_with_raw_output_and_retried(tmp_path):
    with RunStore(tmp_path) as store:
        broken = fake(answers={"q1": "!fail"})
        out = run_jobs(store, broken, "attempts", "think", jobs(3), run_seed=0)
        assert out[("p1", 0)].status == "failed" and out[("p1", 0)].text == "partial output"
        assert out[("p1", 0)].error == "scripted failure"
        assert out[("p0", 0)].status == "ok"
        healed = fake()
        out = run_jobs(store, healed, "attempts", "think", jobs(3), run_seed=0)
        assert len(healed.sent) == 1 and out[("p1", 0)].status == "ok"


def test_length_cut_is_marked_and_prefix_kept(tmp_path):
    with RunStore(tmp_path) as store:
        backend = fake(default_reply="one two three four five")
        js = [Job("p", 0, Request([{"role": "user", "content": "x"}], Sampling(max_tokens=3)),
                  output_prefix="<think>\n")]
        rec = run_jobs(store, backend, "attempts", "think", js, run_seed=0)[("p", 0)]
        assert rec.truncated and rec.text == "<think>\none two three"


def test_pool_shares_one_engine_across_roles():
    with BackendPool() as pool:
        a = pool.get(FakeModel(backend="fake", model="m", system_prompt="A"))
        b = pool.get(FakeModel(backend="fake", model="m", system_prompt="B"))
        assert a is b and b.cfg.system_prompt == "B"
        c = pool.get(FakeModel(backend="fake", model="other"))
        assert c is not a


def committed(tmp_path):
    """Generations another connection sees: what a kill at this moment would leave."""
    import sqlite3

    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]


def test_a_stream_hands_results_over_in_groups_stored_first(tmp_path):
    """What comes back before the backend would wait is stored in one transaction and handed
    over together; what the callback puts in joins the next group."""
    backend = make_backend(FakeModel(backend="fake", model="f"))
    groups = []
    with RunStore(tmp_path) as store:
        stream = JobStream(store, backend, "probe", "instruct", 0, "test")

        def on_results(results):
            groups.append(sorted(job.problem_id for job, _ in results))
            assert committed(tmp_path) == sum(map(len, groups))  # stored before handed over
            if len(groups) == 1:
                for job in jobs(2, text="next"):
                    stream.put(job)

        for job in jobs(5):
            stream.put(job)
        stream.run(on_results)
    assert groups == [["p0", "p1", "p2", "p3", "p4"], ["p0", "p1"]]


def test_a_group_is_capped_and_a_stream_without_waits_hands_over_each_result(tmp_path):
    from hinttune.core.backends.base import Backend

    fast = make_backend(FakeModel(backend="fake", model="f"))
    plain = make_backend(FakeModel(backend="fake", model="g"))
    plain.stream = lambda feed: Backend.stream(plain, feed)  # the default: a WAIT after each
    with RunStore(tmp_path) as store:
        for backend, cap, sizes in ((fast, 2, [2, 2, 1]), (plain, 256, [1] * 5)):
            seen = []
            stream = JobStream(store, backend, "probe", backend.cfg.model, 0, "test", batch=cap)
            for job in jobs(5):
                stream.put(job)
            stream.run(lambda results: seen.append(len(results)))
            assert seen == sizes


def breaking_after(n):
    """A streaming fake backend whose stream is killed after its n-th result."""
    backend = make_backend(FakeModel(backend="fake", model="f"))
    real = backend.stream

    def breaks(feed):
        for count, item in enumerate(real(feed)):
            if count == n:
                raise KeyboardInterrupt
            yield item

    backend.stream = breaks
    return backend


def test_results_held_when_the_stream_breaks_are_kept(tmp_path):
    backend = breaking_after(3)  # a kill between results, before the engine waits
    with RunStore(tmp_path) as store:
        stream = JobStream(store, backend, "probe", "instruct", 0, "test")
        for job in jobs(5):
            stream.put(job)
        with pytest.raises(KeyboardInterrupt):
            stream.run(lambda results: None)
        assert store.count("ok") == 3  # the three that came back, each once
        again = fake()
        out = run_jobs(store, again, "probe", "instruct", jobs(5), run_seed=0)
        assert len(again.sent) == 2 and len(out) == 5


def test_run_jobs_commits_a_streaming_backends_results_together(tmp_path, monkeypatch):
    groups = []
    with RunStore(tmp_path) as store:
        real = store.put_many
        monkeypatch.setattr(store, "put_many", lambda records: groups.append(len(records)) or real(records))
        run_jobs(store, make_backend(FakeModel(backend="fake", model="f")), "s", "r", jobs(5), run_seed=0)
        assert groups == [5]  # one engine step, one transaction
        run_jobs(store, fake(), "s", "r2", jobs(3, text="other"), run_seed=0)  # no stream: one by one
        assert groups == [5, 1, 1, 1]


def test_run_jobs_keeps_what_came_back_before_a_kill(tmp_path):
    backend = breaking_after(2)
    with RunStore(tmp_path) as store:
        with pytest.raises(KeyboardInterrupt):
            run_jobs(store, backend, "s", "r", jobs(4), run_seed=0)
        assert store.count("ok") == 2
