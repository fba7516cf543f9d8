"""Figures: one way to get a headless pyplot and one way to save a figure.

Matplotlib is imported on first use (never at ``vigil --help``)::

    >>> import tempfile, pathlib
    >>> plt = pyplot()
    >>> figure, axis = plt.subplots(figsize=(2, 2))
    >>> _ = axis.plot([0, 1], [0, 1])
    >>> path = save_figure(figure, pathlib.Path(tempfile.mkdtemp()) / "sub" / "line.png")
    >>> path.read_bytes()[:4] == b"\\x89PNG"
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path | str, dpi: int = 100, tight: bool = True) -> Path:
    """Lay out ``figure``, write it to ``path`` (folders made), close it; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    pyplot().close(figure)
    return path


__all__ = ["pyplot", "save_figure"]
