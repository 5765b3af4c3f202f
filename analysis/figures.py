"""Shared figure plumbing: every figure is titled, laid out, written and closed the same way."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig, path: Path, title: str, *, fontsize: int, dpi: int) -> Path:
    """Title, lay out, write and close a figure; returns its path."""
    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
