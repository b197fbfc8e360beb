"""Building a Hint Tuning dataset: attempts, segmentation, probing, states, export, the summary, and
the baselines and probe comparisons beside it (``hinttune run`` and its stages)."""
