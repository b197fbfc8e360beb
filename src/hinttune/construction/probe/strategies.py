"""Search strategies for the minimal effective hint K*: which prefix lengths k to try next for
one problem, given the outcomes so far. All of them run batched across problems: each engine
round sends the pending k of every open problem together.

- ``linear``: k = first, first+1, … until a success (the paper; rounds ≤ max K* + 1). With
  ``probe.fill_batch`` it looks ahead over several k per round when few problems are open, so
  the engine's batch stays full in the long tail - same K*, fewer rounds.
- ``sweep``: every k in one round (fewest rounds, most tokens; good for latency and for the
  prefix cache - same problem, growing prefixes).
- ``gallop``: exponential steps (first, first+1, first+3, first+7, …) until a success, then a
  binary search below it (fewest generations; rounds ≤ 2·log2(N) + 2). It finds the same K* as
  ``linear`` whenever success is monotone in k (once a prefix works, every longer one does).
  When it is not, gallop can return a larger k than linear: the binary search skips the
  earlier, isolated success. ``verify`` then checks k−1 of the found K* (and keeps walking
  down while that succeeds), which repairs the common case of a success just below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Search(ABC):
    def __init__(self, first: int, last: int):
        self.first, self.last = first, last
        self.outcomes: dict[int, bool] = {}
        self.k_star: int | None = None
        self.done = first > last

    @abstractmethod
    def pending(self) -> list[int]:
        """The k to try in the next round (empty once done)."""

    def record(self, k: int, success: bool) -> None:
        self.outcomes[k] = success
        self._update(k, success)

    @abstractmethod
    def _update(self, k: int, success: bool) -> None: ...


class Linear(Search):
    """k = first, first+1, ... ``lookahead`` > 1 asks for that many consecutive k in one round
    (set per round by the runner to keep the engine's batch full when few problems are
    open); K* is still the smallest successful k, exactly as one k at a time finds it."""

    def __init__(self, first: int, last: int):
        super().__init__(first, last)
        self.next = first
        self.lookahead = 1
        self.asked: list[int] = []

    def pending(self) -> list[int]:
        if self.done:
            return []
        if not self.asked:
            self.asked = list(range(self.next, min(self.last, self.next + self.lookahead - 1) + 1))
        return [k for k in self.asked if k not in self.outcomes]

    def expect(self, k: int) -> None:
        """Rolling look-ahead: the caller asked k itself and records it next, in order."""
        self.asked = [k]

    def _update(self, k: int, success: bool) -> None:
        if any(j not in self.outcomes for j in self.asked):
            return  # wait for the rest of this round
        wins = [j for j in self.asked if self.outcomes[j]]
        if wins:
            self.k_star, self.done = min(wins), True
        elif self.asked[-1] >= self.last:
            self.done = True
        else:
            self.next = self.asked[-1] + 1
        self.asked = []


class Sweep(Search):
    def pending(self) -> list[int]:
        return [] if self.done else [k for k in range(self.first, self.last + 1) if k not in self.outcomes]

    def _update(self, k: int, success: bool) -> None:
        if len(self.outcomes) == self.last - self.first + 1:
            wins = [k for k, ok in self.outcomes.items() if ok]
            self.k_star, self.done = (min(wins) if wins else None), True


class Gallop(Search):
    def __init__(self, first: int, last: int, verify: bool = False):
        super().__init__(first, last)
        self.verify = verify
        self.lo = first - 1  # highest k known to fail (below hi)
        self.hi: int | None = None  # lowest k known to succeed
        self.offset = 0  # first + 0, 1, 3, 7, 15, ...
        self.next = first
        self.verifying = False

    def pending(self) -> list[int]:
        return [] if self.done else [self.next]

    def _update(self, k: int, success: bool) -> None:
        if self.verifying:  # a fresh look at hi - 1
            if success:
                self.hi = k
                self._settle()
            else:
                self.k_star, self.done = self.hi, True
            return
        if success:
            self.hi = k if self.hi is None else min(self.hi, k)
        else:
            self.lo = max(self.lo, k)
        if self.hi is None:  # galloping up
            if k >= self.last:
                self.done = True
                return
            self.offset = 2 * self.offset + 1
            self.next = min(self.last, self.first + self.offset)
        elif self.hi - self.lo > 1:  # binary search inside the bracket
            self.next = (self.lo + self.hi) // 2
        else:
            self._settle()

    def _settle(self) -> None:
        assert self.hi is not None
        if self.verify and self.hi - 1 >= self.first:
            self.verifying, self.next = True, self.hi - 1
        else:
            self.k_star, self.done = self.hi, True


def make_search(strategy: str, first: int, last: int, verify: bool = False) -> Search:
    if strategy == "linear":
        return Linear(first, last)
    if strategy == "sweep":
        return Sweep(first, last)
    if strategy == "gallop":
        return Gallop(first, last, verify)
    raise ValueError(f"unknown strategy {strategy!r}")
