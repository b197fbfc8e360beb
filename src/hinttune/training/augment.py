"""Instruction robustness: the 1K set uses one prompt style; to generalize to other phrasings,
add prompt variants of each sample before training (the original is always kept)."""

from __future__ import annotations

import random
from typing import Any

from hinttune.core.store import stable_hash

DEFAULT_TEMPLATES = (
    "Solve: {problem}",
    "{problem}\n\nThink step by step.",
    "Q: {problem}\nA:",
    "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
    "Problem:\n{problem}\n\nGive the final answer at the end.",
    "Can you help me with this?\n\n{problem}",
)


def augment_records(records: list[dict[str, Any]], templates: tuple[str, ...] | list[str] = DEFAULT_TEMPLATES,
                    copies: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """Each Alpaca record, then ``copies`` variants whose instruction is rephrased with
    distinct templates chosen at random (seeded per record, so the output does not depend on
    the order or number of records). Phrasings that ask for ``\\boxed{}`` are used only for
    records whose target answer is boxed."""
    if not templates:
        return list(records)
    out = []
    for record in records:
        out.append(record)
        rng = random.Random(stable_hash("augment", seed, record["instruction"]))
        # a prompt asking for \boxed{} would teach the model to ignore it when the answer is not boxed
        usable = [t for t in templates if "boxed" not in t or "\\boxed" in record.get("output", "")]
        picks = rng.sample(usable, k=min(copies, len(usable)))
        for template in picks:
            out.append({**record, "instruction": template.format(problem=record["instruction"])})
    return out
