"""Which weights a local model folder holds, cheaply: a hash of the name, size and modification
time of its weight, config and tokenizer files. Generations are keyed by it, so retraining
into the same folder (or replacing a GGUF file) never reuses the old model's outputs; a hub id
has no local files and is keyed by its name (pin a revision for reproducibility)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hinttune.core.chat import resolve_model_path
from hinttune.core.errors import HinttuneError

# what decides a model's outputs; optimizer states, logs and checkpoints-in-progress do not
PATTERNS = ("*.safetensors", "*.bin", "*.gguf", "*.pt", "*.pth", "config.json",
            "generation_config.json", "tokenizer*", "vocab*", "merges.txt", "special_tokens_map.json",
            "added_tokens.json", "chat_template*", "preprocessor_config.json")


def weights_fingerprint(model: str, gguf_file: str | None = None) -> str | None:
    """16 hex digits for a local folder or file, None for anything else (a hub id, a server's
    model name)."""
    try:
        path = Path(resolve_model_path(model))
    except HinttuneError:
        return None
    if path.is_dir():
        files = sorted({f for pattern in PATTERNS for f in path.glob(pattern) if f.is_file()})
        if gguf_file:
            files = [f for f in files if f.suffix != ".gguf" or f.name == gguf_file]
    elif path.is_file():
        files = [path]
    else:
        return None
    digest = hashlib.sha256()
    for f in files:
        stat = f.stat()
        digest.update(f"{f.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def record_digest(record: dict[str, str]) -> str:
    """What a dataset's meta sidecar says each record is: a trainer checks the dataset it
    reads against it record by record (the Alpaca and messages files of one export agree)."""
    from hinttune.core.store import stable_hash

    return stable_hash(record["instruction"], record.get("input", ""), record["output"])  # all 64 hex digits
