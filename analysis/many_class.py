"""The many-class mini setting (results/many_class/<profile>/): the teacher's class hierarchy as a
heat map (analysis/render.py calls it through FIGURES)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402

from analysis.figures import save_figure  # noqa: E402


def class_probabilities(logits: torch.Tensor, labels: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """(C, C): row y = the mean softmax(z / tau) over the test samples of true class y."""
    p = torch.softmax(logits.double() / tau, dim=1)
    C = p.shape[1]
    sums = torch.zeros(C, C, dtype=torch.float64).index_add_(0, labels, p)
    counts = torch.bincount(labels, minlength=C).clamp(min=1).double()
    return sums / counts[:, None]


def coarse_probabilities(fine: torch.Tensor, coarse_of_fine) -> torch.Tensor:
    """(K, K): mean over the fine classes of coarse class a of the mass on coarse class b."""
    coarse = torch.as_tensor(coarse_of_fine)
    K = int(coarse.max()) + 1
    onehot = torch.nn.functional.one_hot(coarse, K).double()          # (C, K)
    mass = fine @ onehot                                              # (C, K): mass per coarse column
    return (onehot.T @ mass) / onehot.sum(0)[:, None]


def hierarchy_figure(ctx, m: dict, path: Path) -> Path:
    """Left: mean teacher probability per (true class, class), log colour scale, classes in coarse
    order (fine class 5c + j); the 5 x 5 blocks on the diagonal are the siblings. Right: the same
    folded to coarse classes."""
    o = ctx.outputs(m["data"]["teacher"]["run"])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 6.2), gridspec_kw={"width_ratios": [1.35, 1]})
    if o is None:
        for a in (ax, ax2):
            a.text(0.5, 0.5, "missing", ha="center", va="center", transform=a.transAxes)
        return save_figure(fig, path, "Teacher class probabilities: missing", fontsize=11, dpi=110)
    cof = m["data"]["coarse_of_fine"]
    order = sorted(range(len(cof)), key=lambda c: (cof[c], c))
    fine = class_probabilities(o["logits"], o["labels"])
    fine = fine[order][:, order]
    from matplotlib.colors import LogNorm

    sns.heatmap(fine.clamp(min=1e-5).numpy(), ax=ax, cmap="magma", norm=LogNorm(vmin=1e-5, vmax=1), square=True,
                xticklabels=False, yticklabels=False, cbar_kws={"label": "mean probability (log scale)"})
    ax.set_xlabel("class (ordered by coarse class)")
    ax.set_ylabel("true class (ordered by coarse class)")
    ax.set_title("Fine classes: mean teacher softmax (τ = 1) per true class", fontsize=10)
    coarse = coarse_probabilities(class_probabilities(o["logits"], o["labels"]), cof)
    sns.heatmap(coarse.numpy(), ax=ax2, cmap="viridis", square=True, annot=False,
                cbar_kws={"label": "mean mass on the coarse class"})
    ax2.set_xlabel("coarse class")
    ax2.set_ylabel("true coarse class")
    ax2.set_title("Coarse classes: mass of each true coarse class", fontsize=10)
    title = (f"Class hierarchy in the teacher's test-set probabilities — profile {m['profile']} "
             f"(one teacher run; diagonal blocks = same coarse class)")
    return save_figure(fig, path, title, fontsize=11, dpi=110)


FIGURES = {"hierarchy": hierarchy_figure}
TABLES: dict = {}
CHECKS: dict = {}
