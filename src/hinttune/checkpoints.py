"""Turn a GGUF file into a normal Hugging Face checkpoint that the Trainer (and vLLM) accept:
transformers flags a GGUF-loaded model as quantized, and the Trainer refuses quantized models."""

from __future__ import annotations

from pathlib import Path

from hinttune.chat import load_tokenizer, resolve_model_path
from hinttune.errors import HinttuneError, missing_extra


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
    return out_dir
