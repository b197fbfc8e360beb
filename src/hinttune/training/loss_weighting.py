"""How the token losses of a batch are weighted.

``token`` (TRL's and transformers' default): the token losses are summed over the whole global
batch (every micro-batch and device) and divided by its number of target tokens, so a sequence
weighs as much as it has tokens. ``sequence`` (s1's and the paper's): each sequence's loss is the
mean over its own target tokens, and the global batch averages those means, so every sample weighs
the same. The difference matters for Hint Tuning, whose point is to mix short targets (No-Hint:
an answer) with long ones (Full-Hint: thousands of reasoning tokens): under ``token`` a Full-Hint
sample of 8,000 tokens outweighs a No-Hint one of 200 forty times over, and the model is taught
mostly to reason at length.
"""

from __future__ import annotations

from typing import Any


def trainer_class(weighting: str) -> Any:
    """TRL's SFTTrainer, or one that averages per-sequence means (``sequence``)."""
    from trl import SFTTrainer

    if weighting == "token":
        return SFTTrainer

    class SequenceMeanSFTTrainer(SFTTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # no token count across the global batch: each micro-batch's loss is a mean, and the
            # Trainer divides it by the accumulation steps (DDP then averages across devices)
            self.model_accepts_loss_kwargs = False
            self.loss_is_scaled_for_ga = False

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            rows = inputs["input_ids"].shape[0]
            if rows == 1 or return_outputs:
                return super().compute_loss(model, inputs, return_outputs=return_outputs)
            import torch

            losses = [super(SequenceMeanSFTTrainer, self).compute_loss(model, _row(inputs, i, rows))
                      for i in range(rows)]
            return torch.stack(losses).mean()

    return SequenceMeanSFTTrainer


def _row(inputs: dict[str, Any], i: int, rows: int) -> dict[str, Any]:
    """Row ``i`` of a padded batch (each tensor with the batch's first dimension is sliced)."""
    return {k: v[i:i + 1] if hasattr(v, "shape") and v.shape[:1] == (rows,) else v for k, v in inputs.items()}
