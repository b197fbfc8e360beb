"""Any OpenAI-compatible server: vLLM, SGLang, llama.cpp, hosted APIs.

Each request is a coroutine on the caller's event loop (``ask``); requests run concurrently
(bounded by ``max_concurrency``, optionally paced to
``requests_per_minute``). 408/409/429/5xx, timeouts, dropped connections and replies that are
not what the API promises (a truncated or invalid body, no text, impossible token counts) are
retried with exponential backoff (honouring ``Retry-After``) up to ``max_retries`` times; every
retry is counted by cause. A request that still fails is returned as a failed generation and
the run goes on; a request the server refuses for good (another 4xx, e.g. a prompt longer
than the context) is returned as rejected and not sent again by later runs. A server that
cannot be reached at all stops the run with one line naming its URL.

A partial assistant turn is continued in one of three ways (``continue_mode``):
- ``completions``: ``/v1/completions`` with the prompt rendered from the model's tokenizer and
  the partial turn appended verbatim - exact, works with vLLM, SGLang and llama.cpp;
- ``chat_continue``: chat with the partial turn as a trailing assistant message and vLLM's /
  SGLang's ``continue_final_message`` (beware Qwen3 thinking templates, see ``chat.py``);
- ``chat_fallback``: the official scripts' way for chat-only APIs: the partial turn as an
  assistant message, then a user message asking to continue.

The API key is read from the environment variable named by ``api_key_env`` when a batch
starts; it is never stored, logged or written to any output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
import weakref
from collections import Counter
from typing import Any, Callable, Iterator

from hinttune.core.backends.base import Generation, Request, TemplatedBackend, failed, rejected
from hinttune.core.config import OpenAIModel
from hinttune.core.errors import HinttuneError
from hinttune.core.secrets import redact, register

log = logging.getLogger(__name__)

# the official scripts' words, byte for byte
CONTINUE_INSTRUCTION = ("Continue your reasoning from where you left off and provide the final "
                        "answer within \\boxed{}.")


RETRY_STATUS = {408, 409, 429}  # and every 5xx
FATAL_STATUS = {401, 403}  # a wrong key fails every request alike: stop the run


class InvalidReply(Exception):
    """A 200 reply that is not what the API promises."""


class RateLimiter:
    """Spaces request starts at least 60/rpm seconds apart (the clock and sleep are
    injectable, so tests need not measure wall time)."""

    def __init__(self, rpm: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Any] = asyncio.sleep):
        self.interval = 60.0 / rpm if rpm else 0.0
        self.next_start = 0.0
        self.lock = asyncio.Lock()
        self.clock, self.sleep = clock, sleep

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = self.clock()
            delay = self.next_start - now
            self.next_start = max(now, self.next_start) + self.interval
        if delay > 0:
            await self.sleep(delay)


class Servers:
    """One client per server of the same model, each with its own limit of requests in
    flight; each request goes to the least busy for its limit (ties in turn), so a slower or
    smaller server simply gets fewer."""

    def __init__(self, clients: list[Any], limits: list[int], rpm: float | None):
        self.clients, self.limits = clients, limits
        self.in_flight = [0] * len(clients)
        self.turn = 0
        self.gate = asyncio.Semaphore(sum(limits))
        self.limiter = RateLimiter(rpm)

    def acquire(self) -> Any:
        n = len(self.clients)
        free = [i for i in range(n) if self.in_flight[i] < self.limits[i]] or list(range(n))
        best = min(free, key=lambda i: (self.in_flight[i] / self.limits[i], (i - self.turn) % n))
        self.turn = (best + 1) % n
        self.in_flight[best] += 1
        return self.clients[best]

    def release(self, client: Any) -> None:
        self.in_flight[self.clients.index(client)] -= 1


class OpenAIBackend(TemplatedBackend):
    name = "openai"
    cfg: OpenAIModel

    def __init__(self, cfg: OpenAIModel):
        super().__init__(cfg)
        self.retries: Counter = Counter()
        # each event loop's clients, gone with the loop
        self._servers: "weakref.WeakKeyDictionary[Any, Servers]" = weakref.WeakKeyDictionary()
        self._turn_ends: list[str] | None = None  # completions mode: where a turn ends

    def identity(self) -> dict[str, Any]:
        # The server address is not part of the identity: the same model served elsewhere
        # gives the same results, and moving a server must not invalidate a run.
        found = {**super().identity(), "continue_mode": self.cfg.continue_mode}
        found.pop("weights", None)  # a served name that happens to be a local folder here
        if self.cfg.revision:  # what the server serves under that name, as the user says
            found["revision"] = self.cfg.revision
        return found

    def prompt_text(self, request: Request) -> str:
        if self.cfg.continue_mode == "completions":
            return super().prompt_text(request)
        return json.dumps({"messages": self._messages(request), "kwargs": request.template_kwargs},
                          ensure_ascii=False, sort_keys=True)

    def _messages(self, request: Request) -> list[dict[str, str]]:
        messages = list(request.messages)
        if request.continuation:
            messages.append({"role": "assistant", "content": request.continuation})
            if self.cfg.continue_mode == "chat_fallback":
                messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
        return messages

    def _limit(self, url: str) -> int:
        limit = self.cfg.max_concurrency
        if isinstance(limit, dict):
            limit = limit.get(url, limit.get("default", 256))
        return max(1, int(limit))

    def _api_key(self) -> str:
        if self.cfg.api_key_env and os.environ.get(self.cfg.api_key_env):
            key = os.environ[self.cfg.api_key_env]
            register(key)  # masked wherever text is written from now on
            return key
        return "EMPTY"  # local servers accept any key

    async def _one(self, client: Any, request: Request, sample: int) -> Generation:
        s = request.sampling
        body: dict[str, Any] = dict(self.cfg.extra_body)
        if s.top_k and s.top_k > 0:
            body["top_k"] = s.top_k
        common: dict[str, Any] = dict(model=self.cfg.model, max_tokens=s.max_tokens,
                                      temperature=s.temperature, top_p=s.top_p)
        if request.seed is not None:
            common["seed"] = request.seed + sample
        if s.stop:
            common["stop"] = list(s.stop)
        if self.cfg.continue_mode == "completions":
            # A raw completion does not know where the turn ends: stop at end-of-turn tokens
            # (llama.cpp's EOS is not SmolLM2's <|im_end|>, for one).
            common["stop"] = list(s.stop) + [t for t in self._turn_ends if t not in s.stop]
            response = await client.completions.create(
                prompt=self.prompt_text(request), extra_body=body or None, **common)
            choice = _first_choice(response)
            text = choice.text
        else:
            if request.template_kwargs:
                body["chat_template_kwargs"] = request.template_kwargs
            if request.continuation and self.cfg.continue_mode == "chat_continue":
                body.update(continue_final_message=True, add_generation_prompt=False)
            response = await client.chat.completions.create(
                messages=self._messages(request), extra_body=body or None, **common)
            choice = _first_choice(response)
            if choice.message is None:
                raise InvalidReply("the reply has no message")
            text = choice.message.content
            reasoning = getattr(choice.message, "reasoning_content", None) or \
                getattr(choice.message, "reasoning", None)
            if reasoning:  # servers with a reasoning parser split the trace off: put it back
                text = f"<think>\n{reasoning}\n</think>\n\n{text}"
        if text is None or not isinstance(text, str):
            raise InvalidReply("the reply has no text")
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        completion_tokens = getattr(usage, "completion_tokens", None)
        for name, value in (("prompt_tokens", prompt_tokens), ("completion_tokens", completion_tokens)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise InvalidReply(f"usage.{name} is {value!r}")
        if completion_tokens is not None and completion_tokens > 2 * s.max_tokens + 16:
            raise InvalidReply(f"usage.completion_tokens is {completion_tokens} for max_tokens "
                               f"{s.max_tokens}")
        return Generation(text, "length" if choice.finish_reason == "length" else "stop",
                          prompt_tokens, completion_tokens)

    async def _attempt(self, servers: "Servers", request: Request, j: int) -> Generation:
        """One sample, with our own retries (the client's are off, so each is counted)."""
        import openai

        retries = self.cfg.max_retries
        for attempt in range(retries + 1):
            wait: float | None = None
            async with servers.gate:
                await servers.limiter.wait()
                client = servers.acquire()
                try:
                    return await self._one(client, request, j)
                except openai.APIStatusError as exc:
                    status, message = exc.status_code, _error_message(exc)
                    if status in FATAL_STATUS:
                        raise HinttuneError(
                            f"{client.base_url}: HTTP {status} ({message}); check the API key in "
                            f"${self.cfg.api_key_env}" if self.cfg.api_key_env else
                            f"{client.base_url}: HTTP {status} ({message})") from None
                    if status < 500 and status not in RETRY_STATUS:
                        return rejected(f"HTTP {status} from {client.base_url}: {message}")
                    cause, error = f"HTTP {status}", f"HTTP {status} from {client.base_url}: {message}"
                    wait = _retry_after(exc)
                except openai.APITimeoutError:
                    cause, error = "timeout", f"timed out after {self.cfg.timeout:g}s at {client.base_url}"
                except openai.APIConnectionError as exc:
                    cause, error = "connection", f"cannot connect to {client.base_url}: {_root_cause(exc)}"
                except asyncio.CancelledError:
                    raise
                except HinttuneError:
                    raise
                except Exception as exc:  # a truncated, invalid or incomplete 200 reply
                    cause = "invalid reply"
                    error = redact(f"invalid reply from {client.base_url}: "
                                   f"{type(exc).__name__}: {exc}")[:500]
                finally:
                    servers.release(client)
            if attempt == retries:
                return failed(error)
            self.retries[cause] += 1
            log.info("retrying (%s), attempt %d of %d: %s", cause, attempt + 1, retries, error)
            await asyncio.sleep(wait if wait is not None else
                                min(8.0, 0.5 * 2 ** attempt) * (0.75 + random.random() / 2))
        raise AssertionError("unreachable")

    async def _request(self, servers: "Servers", index: int,
                       request: Request) -> tuple[int, list[Generation]]:
        gens = list(await asyncio.gather(*(self._attempt(servers, request, j) for j in range(request.n))))
        if any(g.failed and g.error and g.error.startswith("cannot connect") for g in gens):
            await self._stop_if_unreachable(servers)
        return index, gens

    async def _stop_if_unreachable(self, servers: "Servers") -> None:
        """A request failed for want of a connection: if no server answers at all, stop the
        run with one line instead of recording every remaining request as failed."""
        for client in servers.clients:
            try:
                await client.with_options(timeout=min(10.0, self.cfg.timeout), max_retries=1).models.list()
                return
            except Exception as exc:
                import openai

                if isinstance(exc, openai.APIStatusError):  # it answers, just not /models
                    return
                last = exc
        urls = ", ".join(str(c.base_url) for c in servers.clients)
        raise HinttuneError(f"cannot reach the server at {urls} ({_root_cause(last)}); start it "
                            "or fix base_url, then re-run to resume")

    def take_counts(self) -> dict[str, int]:
        counts = {f"retries: {cause}": n for cause, n in self.retries.items()}
        self.retries.clear()
        return counts

    @property
    def slots(self) -> int:  # type: ignore[override]
        urls = [self.cfg.base_url] if isinstance(self.cfg.base_url, str) else list(self.cfg.base_url)
        return sum(self._limit(url) for url in urls)

    async def ask(self, request: Request, affinity: str | None = None) -> list[Generation]:
        """A coroutine on the caller's event loop, beside every other request in flight."""
        with self._count_lock:
            self._in_flight += 1
        try:
            return (await self._request(self._servers_here(), 0, request))[1]
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def _servers_here(self) -> Servers:
        """The clients of the running event loop: an HTTP client belongs to the loop it was
        made on, and each stage of a run may run its own loop."""
        loop = asyncio.get_running_loop()
        servers = self._servers.get(loop)
        if servers is None:
            from openai import AsyncOpenAI

            if self._turn_ends is None:
                self._turn_ends = []
                if self.cfg.continue_mode == "completions":
                    from hinttune.core.chat import end_of_turn_tokens

                    self._turn_ends = end_of_turn_tokens(self.tokenizer())
            urls = [self.cfg.base_url] if isinstance(self.cfg.base_url, str) else list(self.cfg.base_url)
            clients = [AsyncOpenAI(base_url=url, api_key=self._api_key(), max_retries=0,
                                   timeout=self.cfg.timeout) for url in urls]
            servers = self._servers[loop] = Servers(clients, [self._limit(url) for url in urls],
                                                    self.cfg.requests_per_minute)
        return servers

    def batch_size(self) -> int:
        return self.slots

    def generate(self, requests: list[Request]) -> Iterator[tuple[int, list[Generation]]]:
        """For callers outside an event loop (``submit`` runs batches of it on a thread)."""

        async def every() -> list[list[Generation]]:
            try:
                return list(await asyncio.gather(*(self.ask(request) for request in requests)))
            finally:
                await self._close_clients()

        yield from enumerate(asyncio.run(every()))

    async def _close_clients(self) -> None:
        servers = self._servers.pop(asyncio.get_running_loop(), None)
        for client in servers.clients if servers is not None else []:
            await client.close()

    def close(self) -> None:
        """Clients of a loop that has ended hold no open request; they are dropped."""
        self._servers.clear()


def _first_choice(response: Any) -> Any:
    choices = getattr(response, "choices", None)
    if not choices:
        raise InvalidReply("the reply has no choices")
    return choices[0]


def _error_message(exc: Any) -> str:
    """The server's message, secrets masked first and then cut to 300 characters (cutting
    first could keep all of a key but its end, which no mask would then recognise)."""
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
    return redact(str(message or getattr(exc, "message", exc)))[:300]


def _retry_after(exc: Any) -> float | None:
    try:
        value = float(exc.response.headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None
    return min(max(value, 0.0), 60.0)


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = redact(str(exc)) or type(exc).__name__
    if isinstance(exc, ConnectionRefusedError) or "refused" in text.lower() or "errno 111" in text.lower():
        return "connection refused"
    return text[:200]
