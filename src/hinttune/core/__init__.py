"""The shared core every part stands on: the typed configuration, problems, the run store, generation
through the backends, grading, and the small utilities they share."""
