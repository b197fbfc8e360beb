"""Turn a GGUF file into a normal Hugging Face checkpoint that the Trainer (and vLLM) accept:
transformers flags a GGUF-loaded model as quantized, and the Trainer refuses quantized models."""

from __future__ import annotations

import json
from pathlib import Path

from hinttune.core.chat import load_tokenizer, resolve_model_path
from hinttune.core.errors import HinttuneError, missing_extra
from hinttune.core.files import write_json


def materialize_gguf(model: str, gguf_file: str, out_dir: Path) -> Path:
    try:
        from transformers import AutoModelForCausalLM
    except ImportError:
        raise missing_extra("transformers", "transformers") from None
    path = resolve_model_path(model)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(path, gguf_file=gguf_file)
    except Exception as exc:
        raise HinttuneError(f"could not load {gguf_file} from {model}: {exc}") from None
    # de-quantized on load: the weights are plain tensors, only the flag remains
    for holder in (loaded, loaded.config):
        for attr in ("quantization_config", "hf_quantizer"):
            if hasattr(holder, attr):
                try:
                    delattr(holder, attr)
                except AttributeError:
                    setattr(holder, attr, None)
    loaded.is_quantized = False
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded.save_pretrained(out_dir)
    load_tokenizer(model, gguf_file).save_pretrained(out_dir)
    make_portable(out_dir)
    return out_dir


# tokenizer classes transformers 5 writes that 4.x cannot import; every one of them loads from
# tokenizer.json, which PreTrainedTokenizerFast reads in both major versions
_V5_TOKENIZER_CLASSES = ("TokenizersBackend", "TokenizersBackendFast")


def make_portable(folder: Path) -> list[str]:
    """Let transformers 4.x read a checkpoint saved by transformers 5.x the same way: 5.x keeps
    the RoPE base inside ``rope_parameters`` (4.x then falls back to 10,000) and names its
    tokenizer class ``TokenizersBackend`` (unknown to 4.x). The 5.x fields stay; 4.x's are added.
    Returns what was changed."""
    changed = []
    config_file, tok_file = Path(folder) / "config.json", Path(folder) / "tokenizer_config.json"
    if config_file.exists():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        rope = config.get("rope_parameters")
        if isinstance(rope, dict) and "rope_theta" in rope and "rope_theta" not in config:
            config["rope_theta"] = rope["rope_theta"]
            if rope.get("rope_type", "default") != "default" and not config.get("rope_scaling"):
                config["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
            write_json(config_file, config)
            changed.append("config.json: rope_theta")
    if tok_file.exists():
        tok = json.loads(tok_file.read_text(encoding="utf-8"))
        if tok.get("tokenizer_class") in _V5_TOKENIZER_CLASSES and (Path(folder) / "tokenizer.json").exists():
            tok["tokenizer_class"] = "PreTrainedTokenizerFast"
            write_json(tok_file, tok)
            changed.append("tokenizer_config.json: tokenizer_class")
    return changed
