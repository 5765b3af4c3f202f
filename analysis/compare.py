"""The comparison (results/compare/<profile>/): a forest plot of each method's paired difference
to KD over seeds, per pair (analysis/render.py calls it through FIGURES)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.figures import save_figure  # noqa: E402
from analysis import evidence as ev  # noqa: E402


def forest(ctx, m: dict, path: Path) -> Path:
    """Each method minus KD of the same seed: the mean and its 95 % interval over seeds."""
    rows = m["data"]["rows"]
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.2 * len(pairs), 0.42 * len(methods) + 1.8), sharey=True,
                             squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        for i, method in enumerate(methods):
            r = next((r for r in rows if r["pair"] == pair and r["method"] == method), None)
            if r is None:
                continue
            if not r.get("diff"):                 # KD itself: the reference
                ax.plot(0, i, marker="D", color="k")
                continue
            cell = r["diff"]["cell"]
            iv = ev.contrast(ctx.values_by_seed(cell | {"minus": None}), ctx.values_by_seed(cell["minus"]))
            if iv is None:
                ax.text(0, i, "missing", va="center", ha="center", fontsize=7, color="0.5")
                continue
            verdict = ev.verdict(iv)
            color = {ev.SUPPORTED: "C2", ev.CONTRADICTED: "C3"}.get(verdict, "0.45")
            low, high = (iv.diff, iv.diff) if iv.how == "one run a side" else (iv.low, iv.high)
            ax.errorbar(iv.diff, i, xerr=[[iv.diff - low], [high - iv.diff]], marker="o", color=color, capsize=3)
            acc = ctx.stat(r["acc"])
            ax.text(iv.diff, i + 0.3, f"{acc.mean:.1f} %" if not acc.missing else "", fontsize=7, ha="center",
                    color="0.3")
        ax.axvline(0, color="0.4", lw=1, ls="--")
        ax.set_title(pair, fontsize=10)
        ax.set_xlabel("test top-1 minus KD, same seed (points; mean and 95 % CI over seeds)")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(methods)))
    axes[0][0].set_yticklabels(methods, fontsize=8)
    axes[0][0].invert_yaxis()
    title = (f"Every logit loss against KD on the same pairs — profile {m['profile']}, {len(m['seeds'])} seed(s), "
             "last epoch (green / red: 95 % CI above / below KD, grey: holds 0; no family correction here)")
    return save_figure(fig, path, title, fontsize=11, dpi=120)


FIGURES = {"forest": forest}
TABLES: dict = {}
CHECKS: dict = {}
