"""Plots are optional (the ``plots`` extra): matplotlib without a display, figures written
atomically like every other output."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hinttune.core.files import atomic_writer

log = logging.getLogger(__name__)
_warned = False


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or None (said once) when it is not installed."""
    global _warned
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if not _warned:
            log.warning("matplotlib is not installed: no plots (pip install 'hinttune[plots]')")
            _warned = True
        return None
    return plt


def save(fig: Any, path: Path) -> Path:
    """Write a figure as PNG (temporary file, then rename) and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, "wb") as out:
        fig.savefig(out, dpi=110, format="png")
    plt.close(fig)
    return path
