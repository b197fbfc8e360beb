"""Any OpenAI-compatible server: vLLM, SGLang, llama.cpp, hosted APIs.

Requests run concurrently (bounded by ``max_concurrency``, optionally paced to
``requests_per_minute``); the ``openai`` client retries 408/409/429/5xx, timeouts and dropped
connections with exponential backoff (honouring ``Retry-After``) up to ``max_retries`` times.
A request that still fails is returned as a failed generation and the run goes on.

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
import time
from typing import Any, Iterator

from hinttune.backends.base import Generation, Request, TemplatedBackend, failed
from hinttune.config import OpenAIModel

log = logging.getLogger(__name__)

CONTINUE_INSTRUCTION = ("Please continue from where you left off and put your final answer "
                        "within \\boxed{}.")


class RateLimiter:
    """Spaces request starts at least 60/rpm seconds apart."""

    def __init__(self, rpm: float | None):
        self.interval = 60.0 / rpm if rpm else 0.0
        self.next_start = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            delay = self.next_start - now
            self.next_start = max(now, self.next_start) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class Servers:
    """One client per server of the same model; each request goes to the one with the fewest
    requests in flight (ties in turn), so a slower server simply gets fewer."""

    def __init__(self, clients: list[Any], per_server: int, rpm: float | None):
        self.clients = clients
        self.in_flight = [0] * len(clients)
        self.turn = 0
        self.gate = asyncio.Semaphore(per_server * len(clients))
        self.limiter = RateLimiter(rpm)

    def acquire(self) -> Any:
        n = len(self.clients)
        best = min(range(n), key=lambda i: (self.in_flight[i], (i - self.turn) % n))
        self.turn = (best + 1) % n
        self.in_flight[best] += 1
        return self.clients[best]

    def release(self, client: Any) -> None:
        self.in_flight[self.clients.index(client)] -= 1


class OpenAIBackend(TemplatedBackend):
    name = "openai"
    cfg: OpenAIModel

    def identity(self) -> dict[str, Any]:
        # The server address is not part of the identity: the same model served elsewhere
        # gives the same results, and moving a server must not invalidate a run.
        return {**super().identity(), "continue_mode": self.cfg.continue_mode}

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

    def _api_key(self) -> str:
        if self.cfg.api_key_env and os.environ.get(self.cfg.api_key_env):
            return os.environ[self.cfg.api_key_env]
        return "EMPTY"  # local servers accept any key

    def _scrub(self, message: str) -> str:
        key = self._api_key()
        return message.replace(key, "***") if key != "EMPTY" else message

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
            choice = response.choices[0]
            text = choice.text
        else:
            if request.template_kwargs:
                body["chat_template_kwargs"] = request.template_kwargs
            if request.continuation and self.cfg.continue_mode == "chat_continue":
                body.update(continue_final_message=True, add_generation_prompt=False)
            response = await client.chat.completions.create(
                messages=self._messages(request), extra_body=body or None, **common)
            choice = response.choices[0]
            text = choice.message.content or ""
            reasoning = getattr(choice.message, "reasoning_content", None) or \
                getattr(choice.message, "reasoning", None)
            if reasoning:  # servers with a reasoning parser split the trace off: put it back
                text = f"<think>\n{reasoning}\n</think>\n\n{text}"
        usage = response.usage
        return Generation(text, "length" if choice.finish_reason == "length" else "stop",
                          usage.prompt_tokens if usage else None,
                          usage.completion_tokens if usage else None)

    async def _request(self, servers: "Servers", index: int,
                       request: Request) -> tuple[int, list[Generation]]:
        async def sample(j: int) -> Generation:
            async with servers.gate:
                await servers.limiter.wait()
                client = servers.acquire()
                try:
                    return await self._one(client, request, j)
                except Exception as exc:  # after the client's own retries
                    return failed(self._scrub(f"{type(exc).__name__}: {exc}"))
                finally:
                    servers.release(client)
        return index, list(await asyncio.gather(*(sample(j) for j in range(request.n))))

    def generate(self, requests: list[Request]) -> Iterator[tuple[int, list[Generation]]]:
        if not requests:
            return
        from openai import AsyncOpenAI
        self._turn_ends: list[str] = []
        if self.cfg.continue_mode == "completions":
            from hinttune.chat import end_of_turn_tokens

            # load the tokenizer before any request, so a bad name fails early
            self._turn_ends = end_of_turn_tokens(self.tokenizer())
        loop = asyncio.new_event_loop()
        urls = [self.cfg.base_url] if isinstance(self.cfg.base_url, str) else list(self.cfg.base_url)
        clients = [AsyncOpenAI(base_url=url, api_key=self._api_key(), max_retries=self.cfg.max_retries,
                               timeout=self.cfg.timeout) for url in urls]
        servers = Servers(clients, self.cfg.max_concurrency, self.cfg.requests_per_minute)
        tasks = {loop.create_task(self._request(servers, i, r)) for i, r in enumerate(requests)}
        try:
            while tasks:  # drive the loop only until the next request completes, then yield it
                done, tasks = loop.run_until_complete(
                    asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED))
                for task in done:
                    yield task.result()
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            for client in clients:
                loop.run_until_complete(client.close())
            loop.close()
