import pytest

from hinttune.core.backends import BackendPool, make_backend
from hinttune.core.backends.base import Backend, Request
from hinttune.core.config import FakeModel, Sampling
from hinttune.core.generations import AsyncJobs, Job, run_jobs
from hinttune.core.store import RunStore


class Counting(Backend):
    """Wraps a backend and counts the requests it is asked to generate."""

    name = "counting"

    def __init__(self, backend):
        super().__init__(backend.cfg)
        self.backend, self.sent = backend, []

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


def breaking_after(n, error=KeyboardInterrupt):
    """A fake backend killed after its n-th result (the rest never come back)."""
    backend = make_backend(FakeModel(backend="fake", model="f"))
    real = backend.generate

    given = [0]  # results handed back, over every batch

    def breaks(requests):
        for item in real(requests):
            if given[0] >= n:
                raise error
            given[0] += 1
            yield item

    backend.generate = breaks
    return backend


def test_awaited_jobs_are_stored_behind_in_one_transaction_per_turn(tmp_path):
    """An awaited job's record goes to the store's writer thread when the event loop's turn
    ends and is committed there (readable from the store all along); what came back together
    goes in one transaction; an identical request is sent once."""
    import asyncio
    import threading

    from concurrent.futures import Future

    backend = make_backend(FakeModel(backend="fake", model="f"))
    held, sent = [], []

    def together(request, affinity=None):
        """Answers come back together, in one turn of the loop: the first alone, then the
        five distinct requests of the gather at once (a batch thread would decide by timing)."""
        future = Future()
        held.append((request, future))
        sent.append(request)
        if len(sent) in (1, 6):
            for queued, waiting in held:
                waiting.set_result(backend._answer(queued))
            held.clear()
        return future

    backend.submit = together
    groups, writers = [], set()
    with RunStore(tmp_path) as store:
        real = store._insert_records

        def insert(db, records):
            groups.append(len(records))
            writers.add(threading.current_thread().name)
            real(db, records)

        store._insert_records = insert
        runner = AsyncJobs(store, backend, "probe", "instruct", 0)

        async def main():
            first = await runner.run(jobs(1, text="alone")[0])
            assert committed(tmp_path) == 0 and store.get(first.key).text == first.text
            await asyncio.sleep(0)  # the turn ended: handed to the writer
            for _ in range(200):
                if committed(tmp_path) == 1:
                    break
                await asyncio.sleep(0.01)
            assert committed(tmp_path) == 1 and store.get(first.key).text == first.text
            return await asyncio.gather(*(runner.run(job) for job in jobs(5) + jobs(2)))

        records = asyncio.run(main())
        runner.close()
        assert [r.problem_id for r in records] == [f"p{i}" for i in range(5)] + ["p0", "p1"]
        assert committed(tmp_path) == 6 and sum(groups) == 6  # the twins were generated once
        assert groups == [1, 5]  # one transaction per turn, not one per record
        assert writers == {"hinttune-store_0"}  # not the event loop's thread
        again = fake()
        asyncio.run(AsyncJobs(store, again, "probe", "instruct", 0).run(jobs(1)[0]))
        assert again.sent == []  # answered from the store


def test_what_came_back_before_a_kill_is_kept_once(tmp_path):
    import asyncio

    backend = breaking_after(3, RuntimeError("the engine broke"))
    with RunStore(tmp_path) as store:
        runner = AsyncJobs(store, backend, "probe", "instruct", 0)

        async def main():
            return await asyncio.gather(*(runner.run(job) for job in jobs(5)), return_exceptions=True)

        outcome = asyncio.run(main())
        runner.close()
        assert sum(isinstance(o, RuntimeError) for o in outcome) >= 1
        assert store.count("ok") == 3  # the three that came back, each once
        again = fake()
        out = run_jobs(store, again, "probe", "instruct", jobs(5), run_seed=0)
        assert len(again.sent) == 2 and len(out) == 5


def test_run_jobs_keeps_what_came_back_before_a_kill(tmp_path):
    """Two generations come back and are handed to the store; then the run is interrupted
    (the engine raises KeyboardInterrupt for the rest): both are kept, nothing else is."""
    from concurrent.futures import Future

    backend = make_backend(FakeModel(backend="fake", model="f"))
    waiting = []

    def submit(request, affinity=None):
        future = Future()
        if len(waiting) < 2:  # the first two answer at once (their tasks resume next turn)
            future.set_result(backend._answer(request))
        waiting.append(future)
        return future

    backend.submit = submit
    with RunStore(tmp_path) as store:
        real_defer, handed = store.defer, []

        def defer(records=(), **kw):  # the second record handed over: interrupt the rest
            real_defer(records, **kw)
            handed.extend(records)
            if records and len(handed) == 2:
                for future in waiting[2:]:
                    future.set_exception(KeyboardInterrupt())

        store.defer = defer
        with pytest.raises(KeyboardInterrupt):
            run_jobs(store, backend, "s", "r", jobs(4), run_seed=0)
        assert store.count("ok") == 2


def test_a_request_a_batch_backend_never_answers_fails_instead_of_hanging(tmp_path):
    backend = make_backend(FakeModel(backend="fake", model="f"))
    real = backend.generate
    backend.generate = lambda requests: (item for item in real(requests) if item[0] != 0)
    with RunStore(tmp_path) as store:
        out = run_jobs(store, backend, "s", "r", jobs(3), run_seed=0)
    assert out[("p0", 0)].status == "failed" and "no result" in out[("p0", 0)].error
    assert out[("p1", 0)].status == "ok" and out[("p2", 0)].status == "ok"
