"""The dataset variants (baselines, first-correct, combined probes)."""
