"""Paper 3 (TALD-KD, logit distortion): its tables and figures beyond the generic renderer, from
the manifests of results/logit_distortion/<profile>/manifest/ and the runs they name:

- ensemble_targets: on the test set, how close one teacher's noisy targets come to a real
  ensemble's (the mean of M teachers' logits): KL to the largest ensemble's softened target,
  top-1 agreement with it, and the variance of the target over noise draws (or over the
  ensemble's members), noise drawn here with the loss's own law (losses/tald.py);
- dark_knowledge: probability on the true class, on its siblings (same coarse class) and on the
  other classes, for the teacher, the noisy teacher and the students;
- figures: noise_sweep (accuracy against the noise scale), dark_knowledge (sibling ratio),
  reliability (reliability diagram of CE, KD and TALD students).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from analysis.figures import save_figure  # noqa: E402
from analysis.metrics import sibling_mass  # noqa: E402
from analysis.tables import MISSING, Table, caption, stat_from_values  # noqa: E402


def _noisy(z: torch.Tensor, scale: float, draws: int, seed: int = 0) -> list[torch.Tensor]:
    """`draws` noisy copies of the logits under the default TALD law (Gaussian, relative)."""
    from losses import build_loss

    law = build_loss("tald", base="kl", tau=4.0, scale=scale, seed=seed)
    return [z + law.sample_noise(z) for _ in range(draws)]


def _kl(q: torch.Tensor, z: torch.Tensor, tau: float) -> float:
    """mean over samples of KL(q || softmax(z / tau))."""
    log_p = torch.log_softmax(z.double() / tau, dim=1)
    return max(0.0, (q * (q.clamp_min(1e-300).log() - log_p)).sum(1).mean().item())   # >= 0 up to rounding


def ensemble_targets_table(ctx, m: dict) -> Table:
    d = m["data"]
    cols = ["target", "KL to the ensemble target", "top-1 agreement with the ensemble %",
            "variance of the target (over draws or members)"]
    logits = [ctx.outputs(t["run"]) for t in d["teachers"]]
    biggest = max(d["sizes"])
    t = Table("ensemble_targets", caption(
        f"Paper 3 implicit vs real ensemble, the targets themselves: test-set softened targets (tau {d['tau']:g}) of "
        f"one teacher with noise, or of ensembles, against the mean of {biggest} teachers' logits.",
        profile=m["profile"], seeds=m["seeds"], statistic=f"{d['draws']} noise draws per scale",
        note="Variance: of softmax(z / tau), per sample and class, averaged; for the ensembles over their members "
             "(how much independently trained teachers disagree), for noise over its draws. OUR ASSUMPTION: the "
             "noise law (Gaussian, std = scale x the sample's logit std)."), cols)
    if any(o is None for o in logits):
        t.add({"target": MISSING})
        return t
    tau = d["tau"]
    zs = [o["logits"].double() for o in logits]
    ensemble = torch.stack(zs[:biggest]).mean(0)
    q = torch.softmax(ensemble / tau, 1)
    top = ensemble.argmax(1)

    def row(name, targets, spread):
        """targets: the logits a student would see (averaged over them); spread: whose variance."""
        probs = torch.stack([torch.softmax(z / tau, 1) for z in spread])
        var = probs.var(0, correction=0).mean().item() if len(spread) > 1 else 0.0
        agree = np.mean([(z.argmax(1) == top).double().mean().item() for z in targets])
        t.add({"target": name, "KL to the ensemble target": f"{np.mean([_kl(q, z, tau) for z in targets]):.4f}",
               "top-1 agreement with the ensemble %": f"{100 * agree:.2f}",
               "variance of the target (over draws or members)": f"{var:.2e}"})

    row("one teacher, no noise", zs[:1], zs[:1])
    for scale in d["scales"]:
        draws = _noisy(zs[0], scale, d["draws"])
        row(f"one teacher + Gaussian noise {scale:g} (each draw)", draws, draws)
    for size in d["sizes"][1:]:
        row(f"mean of {size} teachers (variance: over its members)", [torch.stack(zs[:size]).mean(0)], zs[:size])
    return t


def _mass_stats(logits, labels, cof, tau) -> dict:
    d = sibling_mass(logits, labels, cof, tau)
    coarse = torch.as_tensor(cof)
    pred = logits.argmax(1)
    wrong = pred != labels
    within = (coarse[pred] == coarse[labels]) & wrong
    d["errors within coarse %"] = 100 * within.double().sum().item() / max(1, int(wrong.sum()))
    return d


DK_COLS = [("true", "true class"), ("siblings", "siblings together"), ("others", "others together"),
           ("ratio", "per sibling / per other"), ("errors within coarse %", "errors inside the coarse class %")]


def dark_knowledge_rows(ctx, d: dict) -> list[tuple[str, dict]]:
    """(name, {column: Stat}) for the teacher, the noisy teacher at each scale, each student."""
    t = ctx.outputs(d["teacher"]["run"])
    if t is None:
        return []
    cof = d["coarse_of_fine"] if d.get("coarse_of_fine") is not None else t.get("coarse_of_fine")
    if cof is None:
        return []
    tau, out = d["tau"], []
    z, y = t["logits"].double(), t["labels"]
    for scale in d["scales"]:
        draws = [z] if scale == 0 else _noisy(z, scale, d["draws"])
        stats = [_mass_stats(x, y, cof, tau) for x in draws]
        name = "teacher" if scale == 0 else f"teacher + noise {scale:g}"
        out.append((name, {k: stat_from_values([s[k] for s in stats], 1, 3) for k, _ in DK_COLS}))
    for name, runs in d["students"].items():
        stats = [_mass_stats(o["logits"].double(), o["labels"], cof, tau)
                 for o in (ctx.outputs(r["run"]) for r in runs) if o is not None]
        out.append((f"student: {name}", {k: stat_from_values([s[k] for s in stats], len(runs), 3) for k, _ in DK_COLS}))
    return out


def dark_knowledge_table(ctx, m: dict) -> Table:
    d = m["data"]
    t = Table("dark_knowledge", caption(
        "Paper 3 dark knowledge: test-set probability (tau 1) on the true class, on its siblings (the other classes "
        "of its coarse class) and on all other classes; 'per sibling / per other' = mean probability of one sibling "
        "over that of one other class (1 = no class structure).", profile=m["profile"], seeds=m["seeds"],
        statistic="students: last epoch, mean ± std over seeds; noisy teacher: over noise draws",
        note="OUR ASSUMPTION: the noise law (Gaussian, std = scale x the sample's logit std)."),
        ["source", *[c for _, c in DK_COLS]])
    rows = dark_knowledge_rows(ctx, d)
    if not rows:
        t.add({"source": MISSING})
    for name, stats in rows:
        t.add({"source": name, **{c: stats[k] for k, c in DK_COLS}})
    return t


def dark_knowledge_figure(ctx, m: dict, path: Path) -> Path:
    rows = dark_knowledge_rows(ctx, m["data"])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    if rows:
        names = [n for n, _ in rows]
        for axis, key, label in ((ax, "ratio", "probability per sibling / per other class"),
                                 (ax2, "siblings", "probability on the siblings together")):
            stats = [s[key] for _, s in rows]
            axis.bar(range(len(rows)), [s.mean for s in stats], yerr=[0 if s.n < 2 else s.std for s in stats],
                     color=["C3" if n.startswith("teacher") else "C0" for n in names], capsize=3)
            axis.set_xticks(range(len(rows)))
            axis.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
            axis.set_ylabel(label)
            axis.grid(axis="y", alpha=0.3)
        ax.axhline(1.0, color="0.4", ls="--", lw=1)
        ax.set_title("Class structure of the non-target probabilities (1 = none)", fontsize=10)
        ax2.set_title("Sibling mass: teacher (red), noisy teacher, students (blue)", fontsize=10)
    title = f"Paper 3 dark knowledge — profile {m['profile']}, tau 1, test set (noise: our assumption)"
    return save_figure(fig, path, title, fontsize=11, dpi=120)


def noise_sweep_figure(ctx, m: dict, path: Path) -> Path:
    d = m["data"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for (base, points), color in zip(d["series"].items(), ("C0", "C3")):
        pts = [(p["scale"], ctx.stat(p["acc"])) for p in points]
        pts = [(x, s) for x, s in pts if not s.missing]
        if pts:
            ax.errorbar([x for x, _ in pts], [s.mean for _, s in pts], yerr=[0 if s.n < 2 else s.std for _, s in pts],
                        marker="o", capsize=3, color=color, label=f"CE + KD ({base}) on noisy teacher logits")
    for cellv, color, label in ((d["ce"], "0.4", "CE student (no teacher)"), (d["teacher"], "k", "teacher")):
        s = ctx.stat(cellv)
        if not s.missing:
            ax.axhline(s.mean, color=color, ls="--", lw=1.2, label=label)
    ax.set_xlabel("noise scale (std as a multiple of each sample's teacher-logit std; our assumption)")
    ax.set_ylabel(f"test top-1 % ({d['dataset']})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    title = f"Paper 3 noise sweep — profile {m['profile']}, {len(m['seeds'])} seed(s), mean ± std, last epoch"
    return save_figure(fig, path, title, fontsize=11, dpi=120)


def reliability_figure(ctx, m: dict, path: Path, bins: int = 15) -> Path:
    fig, ax = plt.subplots(figsize=(6, 5.4))
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="perfect calibration")
    for (name, runs), color in zip(m["data"]["clean"].items(), ("0.4", "C0", "C3", "C2")):
        outs = [ctx.outputs(r["run"]) for r in runs]
        outs = [o for o in outs if o is not None]
        if not outs:
            continue
        p = torch.cat([torch.softmax(o["logits"].double(), 1) for o in outs])
        y = torch.cat([o["labels"] for o in outs])
        conf, pred = p.max(1)
        which = torch.bucketize(conf, torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1], right=True)
        xs, ys = [], []
        for b in range(bins):
            inside = which == b
            if inside.sum() >= 20:
                xs.append(conf[inside].mean().item())
                ys.append((pred[inside] == y[inside]).double().mean().item())
        ax.plot(xs, ys, marker="o", color=color, label=f"{name} ({len(outs)} seed(s) pooled)")
    ax.set_xlabel("confidence (max softmax), bins of 1/15; bins with < 20 samples left out")
    ax.set_ylabel("accuracy in the bin")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    title = f"Paper 3 calibration — profile {m['profile']}, clean labels, test set"
    return save_figure(fig, path, title, fontsize=11, dpi=120)


FIGURES = {"noise_sweep": noise_sweep_figure, "dark_knowledge": dark_knowledge_figure,
           "reliability": reliability_figure}
TABLES = {"ensemble_targets": ensemble_targets_table, "dark_knowledge": dark_knowledge_table}
CHECKS: dict = {}
