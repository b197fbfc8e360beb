"""Fine-tuning on a dataset: TRL SFT (``hinttune train``), portable checkpoints, prompt variants,
and the same recipe for LLaMA-Factory."""
