"""Shared figure plumbing: every figure is titled, laid out, written and closed the same way."""
from pathlib import Path

import matplotlib

from common.files import atomic_file

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig, path: Path, title: str, *, fontsize: int, dpi: int) -> Path:
    """Title, lay out, write and close a figure; returns its path."""
    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    with atomic_file(path) as f:           # a kill while drawing leaves no empty or torn figure
        fig.savefig(f, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
