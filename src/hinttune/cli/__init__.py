"""The ``hinttune`` command line, one module per command group over shared options
(``common``): every stage takes the same options - a config (file or preset), ``--set
key=value`` overrides for any field, and shortcuts for the common ones."""

# each registers its commands, in the order `hinttune --help` lists them
from hinttune.cli import construction, training, evaluation, experiment  # noqa: F401, I001
from hinttune.cli.common import app, default_run_dir, friendly, storage_error

__all__ = ["app", "default_run_dir", "friendly", "storage_error"]
