"""Bringing results made elsewhere into a run: the official scripts' intermediate files."""
