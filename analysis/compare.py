"""The comparison (results/compare/<profile>/): a forest plot of each method's paired difference
to KD over seeds, per pair (analysis/render.py calls it through FIGURES)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.figures import save_figure  # noqa: E402
from analysis.tables import Stat, compare  # noqa: E402


def forest(ctx, m: dict, path: Path) -> Path:
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
            s = ctx.stat(r["diff"]) if "cell" in (r["diff"] or {}) else None
            if method.startswith("KD (KL"):
                ax.plot(0, i, marker="D", color="k")
                continue
            if s is None or s.missing:
                ax.text(0, i, "missing", va="center", ha="center", fontsize=7, color="0.5")
                continue
            verdict = compare(s, Stat(0.0, 0.0, s.n, s.n))[0]      # the claims' rule: 2 SE of the paired mean
            color = {"yes": "C2", "no": "C3"}.get(verdict, "0.45")
            ax.errorbar(s.mean, i, xerr=0 if s.n < 2 else s.std, marker="o", color=color, capsize=3)
            acc = ctx.stat(r["acc"])
            ax.text(s.mean, i + 0.28, f"{acc.mean:.1f} %" if not acc.missing else "",
                    fontsize=7, ha="center", color="0.3")
        ax.axvline(0, color="0.4", lw=1, ls="--")
        ax.set_title(pair, fontsize=10)
        ax.set_xlabel("test top-1 minus KD, same seed (points; mean ± std over seeds)")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(methods)))
    axes[0][0].set_yticklabels(methods, fontsize=8)
    axes[0][0].invert_yaxis()
    title = (f"Every logit loss against KD on the same pairs — profile {m['profile']}, {len(m['seeds'])} seed(s), "
             "last epoch (green / red: above / below KD by 2 SE, grey: within)")
    return save_figure(fig, path, title, fontsize=11, dpi=120)


FIGURES = {"forest": forest}
TABLES: dict = {}
CHECKS: dict = {}
