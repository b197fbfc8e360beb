"""A scripted backend shipped with the package: no weights, deterministic replies. For tests,
dry runs of a configuration, and examples. The reply is the first ``answers`` entry whose key
occurs in the rendered prompt (else ``default_reply``); a reply of ``!fail`` simulates an
engine error for that request. Its identity is its `model` name, not its script (tests change
the script to let a failed request succeed on the next run): two scripts that must not share
results need two names."""

from __future__ import annotations

import json
import re
import time
from typing import Iterator

from hinttune.core.backends.base import Backend, Generation, Request, failed
from hinttune.core.config import FakeModel


class FakeBackend(Backend):
    name = "fake"
    cfg: FakeModel

    def prompt_text(self, request: Request) -> str:
        rendered = "".join(f"<|{m['role']}|>{m['content']}\n" for m in request.messages)
        if request.template_kwargs:
            rendered += json.dumps(request.template_kwargs, sort_keys=True)
        return rendered + "<|assistant|>" + (request.continuation or "")

    def _reply(self, prompt: str) -> str:
        return next((reply for key, reply in self.cfg.answers.items()
                     if (re.search(key[3:], prompt) if key.startswith("re:") else key in prompt)),
                    self.cfg.default_reply)

    slots = 256

    def batch_size(self) -> int:
        return self.slots

    def generate(self, requests: list[Request]) -> Iterator[tuple[int, list[Generation]]]:
        """Everything queued at once, newest first: results come back out of order, as they
        do from a real engine."""
        for index in reversed(range(len(requests))):
            yield index, self._answer(requests[index])

    def _answer(self, request: Request) -> list[Generation]:
        prompt = self.prompt_text(request)
        reply = self._reply(prompt)
        outputs = []
        for _ in range(request.n):
            if self.cfg.delay:
                time.sleep(self.cfg.delay)
            if reply == "!fail":
                outputs.append(failed("scripted failure", raw="partial output"))
                continue
            words = reply.split(" ")
            cut = len(words) > request.sampling.max_tokens
            text = " ".join(words[:request.sampling.max_tokens])
            outputs.append(Generation(text, "length" if cut else "stop",
                                      len(prompt.split()), min(len(words), request.sampling.max_tokens)))
        return outputs
