"""``hinttune experiment``: from a construction run to the paper's table in one command.

- ``datasets``: which datasets are trained (a run's Hint Tuning dataset and baselines by name,
  or any dataset path), ``training``: one recipe for all at equal compute, once per seed;
- ``jobs``: the training and evaluation jobs, each skipped when its inputs are unchanged
  (fingerprints), each runnable on its own (a Slurm array task);
- ``table``: accuracy with its interval, tokens and truncation per model and benchmark, paired
  tests against the reference across problems and seeds, training-benchmark overlap; written
  to experiment.json, experiment.md and experiment.png.
"""
