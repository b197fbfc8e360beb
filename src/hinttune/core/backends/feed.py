"""Requests that may keep arriving while a backend generates.

A round-based stage hands a backend a list; a continuous one hands it a ``Feed`` and keeps
putting requests in as results come back (the next prefix of a problem the moment its last
continuation was graded wrong). The backend takes what is there whenever it has room and
stops when the feed is closed and everything taken has been returned.

Between results a stream may yield ``WAIT`` (``base.py``): everything it had ready has been handed out and
the next result needs the engine to run. A caller that holds results back to act on them
together (store them in one transaction, grade them in one call) does so then, and puts in
what they decide before the stream waits."""

from __future__ import annotations

from collections import deque
from typing import Iterable

from hinttune.core.backends.base import Request


class Feed:
    def __init__(self, requests: Iterable[Request] = (), closed: bool = False):
        self._queue: deque[tuple[int, Request]] = deque()
        self._next = 0
        self.closed = False
        for request in requests:
            self.put(request)
        self.closed = closed

    def put(self, request: Request) -> int:
        """Queue a request; its index identifies its results."""
        if self.closed:
            raise RuntimeError("this feed is closed")
        index = self._next
        self._next += 1
        self._queue.append((index, request))
        return index

    def take(self, limit: int | None = None) -> list[tuple[int, Request]]:
        """Up to ``limit`` queued requests (all of them with None), oldest first."""
        n = len(self._queue) if limit is None else min(limit, len(self._queue))
        return [self._queue.popleft() for _ in range(n)]

    def put_back(self, item: tuple[int, Request]) -> None:
        """Return a taken request to the front of the queue (its index unchanged)."""
        self._queue.appendleft(item)

    def close(self) -> None:
        self.closed = True

    @property
    def empty(self) -> bool:
        return not self._queue

    def __len__(self) -> int:
        return len(self._queue)


def as_feed(requests: Iterable[Request] | Feed) -> Feed:
    return requests if isinstance(requests, Feed) else Feed(requests, closed=True)
