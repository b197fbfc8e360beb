"""Measuring accuracy against reasoning length: ``hinttune eval``, its benchmarks and metrics,
``hinttune compare``, and lighteval tasks that score the same way."""
