"""Local Hugging Face models (a folder, a hub id, or a GGUF file) with batched generation on
CPU or GPU: left padding, prompts sorted by length to waste little padding, and stopping at
the end-of-turn token as well as at EOS.

Seeding: transformers cannot seed each row of a batch separately, so each batch is seeded
from its first request's seed. Greedy decoding (temperature 0) is seed-independent.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Iterator

from hinttune.core.backends.base import Generation, Request, TemplatedBackend, failed, rejected
from hinttune.core.chat import encode_prompt, end_of_turn_tokens, resolve_model_path
from hinttune.core.config import TransformersModel
from hinttune.core.errors import HinttuneError, missing_extra

log = logging.getLogger(__name__)


class TransformersBackend(TemplatedBackend):
    name = "transformers"
    cfg: TransformersModel

    def __init__(self, cfg: TransformersModel):
        super().__init__(cfg)
        self.model: Any = None

    def load(self) -> None:
        if self.model is not None:
            return
        try:
            import torch
            from transformers import AutoModelForCausalLM
        except ImportError:
            raise missing_extra("transformers", "transformers") from None
        path = resolve_model_path(self.cfg.model)
        kwargs: dict[str, Any] = {"trust_remote_code": self.cfg.trust_remote_code}
        if self.cfg.gguf_file:
            kwargs["gguf_file"] = self.cfg.gguf_file
        if self.cfg.dtype != "auto":
            kwargs["dtype"] = getattr(torch, self.cfg.dtype)
        device = self.cfg.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu":
            threads = self.cfg.num_threads or cpu_threads()
            torch.set_num_threads(threads)
            log.info("torch on the CPU with %d thread(s)", threads)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress bars are the ones that matter
        if self.cfg.gguf_file:  # the GGUF loader uses a bare tqdm bar of its own
            import functools

            import tqdm.auto
            from transformers import modeling_gguf_pytorch_utils as gguf_utils

            gguf_utils.tqdm = functools.partial(tqdm.auto.tqdm, disable=True)
        started = time.time()
        try:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except Exception as exc:
            raise HinttuneError(f"could not load model {self.cfg.model!r}: {exc}") from None
        self.model = model.to(device).eval()
        self.device = device
        tok = self.tokenizer()
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self.stop_ids = sorted({tok.convert_tokens_to_ids(t) for t in end_of_turn_tokens(tok)})
        self.context = context_length(model.config)
        log.info("loaded %s on %s in %.1fs", self.cfg.model, device, time.time() - started)

    def _batches(self, requests: list[Request], too_long: dict[int, str]) -> list[list[tuple[int, int, list[int]]]]:
        """Rows (request index, sample, token ids) grouped into batches of equal sampling
        settings, sorted by prompt length. Prompts that leave no room in the model's context
        go to ``too_long`` with the reason instead (a 1 MB problem would otherwise run for
        minutes and gigabytes before failing)."""
        tok = self.tokenizer()
        rows = []
        for index, request in enumerate(requests):
            ids = encode_prompt(tok, self.prompt_text(request))
            if self.context and len(ids) >= self.context:
                too_long[index] = (f"prompt has {len(ids)} tokens, the model's context is "
                                   f"{self.context}")
                continue
            rows += [(index, j, ids) for j in range(request.n)]
        def group(row: tuple[int, int, list[int]]) -> str:
            return requests[row[0]].sampling.model_dump_json()
        rows.sort(key=lambda row: (group(row), len(row[2])))
        batches: list[list[tuple[int, int, list[int]]]] = []
        for row in rows:
            if batches and len(batches[-1]) < self.cfg.batch_size and group(batches[-1][0]) == group(row):
                batches[-1].append(row)
            else:
                batches.append([row])
        return batches

    def _run_batch(self, rows: list[tuple[int, int, list[int]]], request: Request) -> list[Generation]:
        import torch

        tok = self.tokenizer()
        width = max(len(ids) for _, _, ids in rows)
        input_ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (_, _, ids) in enumerate(rows):
            input_ids[i, width - len(ids):] = torch.tensor(ids)
            mask[i, width - len(ids):] = 1
        s = request.sampling
        room = self.context - width if self.context else s.max_tokens
        kwargs: dict[str, Any] = {"max_new_tokens": min(s.max_tokens, room), "eos_token_id": self.stop_ids,
                                  "pad_token_id": tok.pad_token_id}
        if s.temperature > 0:
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p,
                          top_k=s.top_k if s.top_k and s.top_k > 0 else 0)
            if request.seed is not None:
                torch.manual_seed(request.seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if s.stop:
            kwargs.update(stop_strings=s.stop, tokenizer=tok)
        if self.token_hook is not None:
            kwargs["stopping_criteria"] = [_TokenCounter(self.token_hook, self.stop_ids, len(rows),
                                                         self._done_tokens)]
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids.to(self.device),
                                      attention_mask=mask.to(self.device), **kwargs)
        results = []
        for i, (_, _, ids) in enumerate(rows):
            new = out[i, width:].tolist()
            ended = next((k for k, t in enumerate(new) if t in self.stop_ids), None)
            if ended is not None:
                new = new[:ended]
            finish = "stop" if ended is not None or len(new) < min(s.max_tokens, room) else "length"
            text = tok.decode(new, skip_special_tokens=True)
            if s.stop:  # cut at the stop string like the servers do
                cuts = [text.find(x) for x in s.stop if x in text]
                if cuts:
                    text, finish = text[:min(cuts)], "stop"
            # counted as vLLM counts them: the end-of-turn token the model sampled is one of
            # its tokens (never more than max_tokens in all)
            results.append(Generation(text, finish, len(ids), len(new) + (ended is not None)))
        self._done_tokens += sum(g.completion_tokens or 0 for g in results)
        return results

    @property
    def slots(self) -> int:  # type: ignore[override]
        return self.cfg.batch_size

    def batch_size(self) -> int:
        # a few batches' worth at once: sorted by prompt length, they pad less
        return 4 * self.cfg.batch_size

    def generate(self, requests: list[Request]) -> Iterator[tuple[int, list[Generation]]]:
        if not requests:
            return
        self.load()
        pending = {i: [None] * r.n for i, r in enumerate(requests)}
        self._done_tokens = 0  # tokens of finished batches whose requests are not all returned
        too_long: dict[int, str] = {}
        batches = self._batches(requests, too_long)
        for index, reason in too_long.items():
            pending.pop(index)
            yield index, [rejected(reason)] * requests[index].n
        for rows in batches:
            first = requests[rows[0][0]]
            try:
                outputs = self._run_batch(rows, first)
            except Exception as exc:  # e.g. out of memory: fail this batch, keep going
                log.exception("batch failed")
                outputs = [failed(f"{type(exc).__name__}: {exc}")] * len(rows)
            for (index, sample, _), gen in zip(rows, outputs):
                pending[index][sample] = gen
                if all(g is not None for g in pending[index]):
                    self._done_tokens -= sum(g.completion_tokens or 0 for g in pending[index])
                    yield index, pending.pop(index)

    def close(self) -> None:
        self.model = None


def cpu_threads() -> int:
    """Threads for torch on the CPU: the cores this process may use that are not busy already.
    On shared cores torch's default (one per core) is several times slower than fewer threads:
    the SmolLM2 demo model made 2.3 tokens/s with 2 threads and 5.3 with 1 on a 2-core machine
    running three other busy processes, and 14.4 with either on the idle machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


class _TokenCounter:
    """A stopping criterion that never stops: it counts the tokens a batch has generated so
    far and reports them, so progress shows throughput while a long batch runs."""

    def __init__(self, hook: Any, stop_ids: list[int], rows: int, base: int):
        self.hook, self.stop_ids, self.base = hook, stop_ids, base
        self.alive = [True] * rows
        self.count = 0

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        last = input_ids[:, -1].tolist()
        for i, token in enumerate(last):
            if self.alive[i]:
                self.count += 1
                if token in self.stop_ids:
                    self.alive[i] = False
        self.hook(self.base + self.count)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def context_length(config: Any) -> int | None:
    """The longest sequence the model was built for, from its config."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
