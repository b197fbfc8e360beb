"""hinttune: Hint Tuning datasets, training and evaluation for reasoning models.

Importing the package is cheap on purpose: heavy engines (torch, transformers, vLLM) are
imported only when a backend that needs them is started.
"""

__version__ = "0.1.0"

from hinttune.core.errors import HinttuneError

__all__ = ["HinttuneError", "__version__"]
