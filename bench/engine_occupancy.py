"""How busy the engine stays during the probe stage: the official loop, round-based probing,
and continuous probing, simulated at paper scale.

An engine with S sequence slots generates one token per running sequence per step; a request
waits for a free slot. Each problem is probed linearly (k = 1, 2, ... N-1 until a success, the
paper's rule) with outcomes from bench/probe_cost.py's difficulty model (1,000 problems,
N = 40). Continuation lengths (tokens) come from one of three models, capped at 16,384 (the
paper's probe budget). Grading is taken as instantaneous.

  official    one request at a time, problem after problem (the official scripts)
  rounds      every open problem's next k together; the next round starts when the slowest
              continuation of this one is done (hinttune's round-based schedule)
  continuous  a problem's next k joins the queue the moment its continuation is graded wrong
              (hinttune's default schedule)

Printed per length model and slot count: engine-busy share (generated tokens / (slots x
makespan)) and makespan in steps, with the lower bound tokens / slots.

    python bench/engine_occupancy.py
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from probe_cost import difficulty_model  # noqa: E402

CAP = 16384
LENGTHS = {  # name -> sampler of one continuation's length
    "lognormal(median 2k, sigma 1)": lambda rng: rng.lognormvariate(math.log(2000), 1.0),
    "lognormal(median 1k, sigma 1.5)": lambda rng: rng.lognormvariate(math.log(1000), 1.5),
    "uniform(500, 4000)": lambda rng: rng.uniform(500, 4000),
}


def workload(problems: int, n: int, seed: int, length):
    """Per probed problem: the length of the continuation at every k = 1..N-1, and how many
    of them linear probing asks (up to and including the first success)."""
    table, _, _ = difficulty_model(problems, n, seed, nonmonotone=0.0)
    rng = random.Random(seed + 1)
    chains = []
    for wins in table:
        if 0 in wins:  # solved unaided: not probed
            continue
        lengths = [max(1, min(CAP, int(length(rng)))) for _ in range(1, n)]
        asked = next((k for k in range(1, n) if k in wins), n - 1)
        chains.append((lengths, asked))
    return chains


def engine(slots: int, arrivals):
    """Run requests through an engine with ``slots`` slots. ``arrivals`` is a generator that
    receives (finish time, request id) and yields new (request id, length) to queue; returns
    the makespan."""
    queue, running, now = [], [], 0  # running: heap of (finish time, request id)
    new = next(arrivals)
    queue.extend(new)
    while queue or running:
        while queue and len(running) < slots:
            rid, length = queue.pop(0)
            heapq.heappush(running, (now + length, rid))
        now, rid = heapq.heappop(running)
        queue.extend(arrivals.send((now, rid)))
    return now


def official(chains, slots):
    return sum(sum(lengths[:asked]) for lengths, asked in chains)  # one sequence at a time


def rounds(chains, slots):
    makespan = 0
    for r in range(max(asked for _, asked in chains)):
        lengths = [lengths[r] for lengths, asked in chains if asked > r]
        # the round's requests through the slots (each takes the first free one); the next
        # round waits for this one's slowest continuation
        free = [0] * min(slots, len(lengths))
        for length in lengths:
            heapq.heappush(free, heapq.heappop(free) + length)
        makespan += max(free)
    return makespan


def continuous(chains, slots, look_ahead=False):
    """A problem's next k is queued the moment its last one is graded wrong. With
    ``look_ahead`` (hinttune's ``probe.fill_batch`` set to the slot count), each problem keeps
    a rolling window of ceil(slots / open problems) consecutive k in flight, refilled the
    moment one comes back and growing as problems close, and settles its k in order, as
    ``linear`` with look-ahead does under the continuous schedule; what was asked past K* is
    wasted, and counted."""
    state = {"wasted": 0}

    def arrivals():
        nxt = [0] * len(chains)  # next k to ask, per problem
        inflight = [0] * len(chains)
        back = [set() for _ in chains]  # k returned and not yet settled
        low = [0] * len(chains)  # lowest unsettled k
        done = [False] * len(chains)
        open_ = [len(chains)]

        def top_up(i):
            lengths, _ = chains[i]
            window = -(-slots // max(open_[0], 1)) if look_ahead else 1
            batch = []
            while not done[i] and inflight[i] < window and nxt[i] < len(lengths):
                batch.append(((i, nxt[i]), lengths[nxt[i]]))
                nxt[i] += 1
                inflight[i] += 1
            return batch

        got = yield [item for i in range(len(chains)) for item in top_up(i)]
        while True:
            _, (i, k) = got
            lengths, asked = chains[i]
            inflight[i] -= 1
            batch = []
            if done[i]:
                state["wasted"] += lengths[k]
                got = yield batch
                continue
            back[i].add(k)
            while low[i] in back[i] and not done[i]:  # settle in order
                done[i] = low[i] == asked - 1 or low[i] == len(lengths) - 1
                low[i] += 1
            if done[i]:
                open_[0] -= 1
                state["wasted"] += sum(lengths[j] for j in back[i] if j >= asked)  # came back early
                for j in range(len(chains)):  # the others' windows grow
                    batch += top_up(j)
            else:
                batch += top_up(i)
            got = yield batch

    span = engine(slots, arrivals())
    return span, state["wasted"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{args.problems} problems, N = {args.episodes}, linear probing, lengths capped at {CAP}; "
          "busy = generated tokens / (slots x makespan)")
    print(f"{'lengths':32} {'slots':>5} {'design':>22} {'busy':>6} {'makespan':>11} "
          f"{'bound':>11} {'past K*':>8}")
    for name, length in LENGTHS.items():
        chains = workload(args.problems, args.episodes, args.seed, length)
        tokens = sum(sum(lengths[:asked]) for lengths, asked in chains)
        for slots in (64, 256, 1024):
            bound = tokens / slots
            for design, run in (("official", lambda: (official(chains, slots), 0)),
                                ("rounds", lambda: (rounds(chains, slots), 0)),
                                ("continuous", lambda: continuous(chains, slots)),
                                ("continuous + look-ahead", lambda: continuous(chains, slots, True))):
                span, wasted = run()
                print(f"{name:32} {slots:>5} {design:>22} {(tokens + wasted) / (slots * span):>6.1%} "
                      f"{span:>11,.0f} {bound:>11,.0f} {wasted / tokens:>8.1%}")


if __name__ == "__main__":
    main()
