"""Paper 2 (Decoupled KL / IKL, Cui et al. NeurIPS 2024): the tables and figures the generic
renderer cannot make, from the manifests of results/decoupled_kl/<profile>/manifest/ and the
run directories they name (analysis/render.py calls these through FIGURES, TABLES, CHECKS):

- equivalence: Theorem 1 on a saved run's test logits (student gradients of `kl` and of `dkl`
  with alpha = beta = 1, float64) and the O(B*C) wMSE of `dkl`/`ikl` against the official
  B x C x C form (losses/reference.py): value and gradient differences, time (median of 5 on
  this machine, measured when the table is rendered) and exact peak tensor memory
  (bench/memory.py), at the data set's class count and at 1000 classes (random logits);
- global_weights: the class-wise prior an IKL run with GI built (from its checkpoint's loss
  state: the final prior, its per-epoch change, snapshots), and per-class accuracy and margin
  of the students with and without global weights (from outputs.pt);
- pair_bars: accuracy of each method per pair (last epoch), a figure of Tables 13 / 14.
"""
from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402

from analysis.figures import save_figure  # noqa: E402
from analysis.tables import MISSING, Table, caption  # noqa: E402

EQ_COLUMNS = ["check", "classes", "batch", "value |diff|", "gradient max |diff|", "O(B*C) ms", "B x C x C ms",
              "speed-up", "O(B*C) peak MB", "B x C x C peak MB"]


def _source(ctx, data: dict):
    """The first candidate run with saved test logits and its teacher's: (candidate, outputs)."""
    for cand in data["candidates"]:
        o = ctx.outputs(cand["run"]["run"])
        if o is not None and o.get("teacher_logits") is not None:
            return cand, o
    return None, None


def _grad(fn, zs, zt, y):
    zs = zs.detach().clone().requires_grad_(True)
    value = fn(zs, zt, y)
    return value.detach(), torch.autograd.grad(value, zs)[0]


def _timed(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def _peak_mb(fn) -> float:
    from bench.memory import TensorMemory

    with TensorMemory() as mem:
        fn()
    return mem.peak_bytes / 2**20


def equivalence_rows(ctx, data: dict) -> tuple[dict | None, list[dict]]:
    """Theorem 1 on real logits, then O(B*C) vs B x C x C at C and at 1000 classes (computed once
    per render: the table and two claims read it)."""
    cache = ctx.__dict__.setdefault("_equivalence", {})
    key = repr(data["candidates"])
    if key not in cache:
        cache[key] = _equivalence_rows(ctx, data)
    return cache[key]


def _equivalence_rows(ctx, data: dict) -> tuple[dict | None, list[dict]]:
    from losses import build_loss
    from losses.reference import dkl_pairwise_reference, ikl_pairwise_reference

    cand, o = _source(ctx, data)
    if o is None:
        return None, []
    tau = data["tau"]
    n = min(512, len(o["logits"]))
    zs, zt, y = o["logits"][:n].double(), o["teacher_logits"][:n].double(), o["labels"][:n]
    rows = []
    _, g_kl = _grad(build_loss("kl", tau=tau), zs, zt, y)
    _, g_dkl = _grad(build_loss("dkl", alpha=1.0, beta=1.0, tau=tau), zs, zt, y)
    rows.append({"check": f"Theorem 1: grad kl(tau={tau:g}) vs grad dkl(1, 1) (gradients only: the values differ)",
                 "classes": zs.shape[1], "batch": n, "value |diff|": "–",
                 "gradient max |diff|": f"{(g_kl - g_dkl).abs().max().item():.2e}"})
    g = torch.Generator().manual_seed(0)
    big = data["big_classes"]
    inputs = [("real logits", zs.float(), zt.float(), y),
              ("random logits", 3 * torch.randn(16, big, generator=g), 3 * torch.randn(16, big, generator=g),
               torch.randint(0, big, (16,), generator=g))]
    for where, a, b, labels in inputs:
        forms = {
            "dkl": (build_loss("dkl", alpha=1.0, beta=1.0, tau=tau),
                    lambda s, t, yy: dkl_pairwise_reference(s, t, tau)),
            "ikl": (build_loss("ikl", alpha=4.0, beta=1.0, tau=tau, T2=100.0),
                    lambda s, t, yy: ikl_pairwise_reference(s, t, yy, tau, T2=100.0, alpha=4.0, beta=1.0))}
        for name, (fast, slow) in forms.items():
            v_fast, g_fast = _grad(fast, a.double(), b.double(), labels)
            v_slow, g_slow = _grad(slow, a.double(), b.double(), labels)

            def run(fn):
                return lambda: _grad(fn, a, b, labels)

            t_fast, t_slow = _timed(run(fast)), _timed(run(slow))
            rows.append({"check": f"{name}: O(B*C) vs B x C x C ({where})", "classes": a.shape[1], "batch": len(a),
                         "value |diff|": f"{abs(v_fast - v_slow).item():.2e}",
                         "gradient max |diff|": f"{(g_fast - g_slow).abs().max().item():.2e}",
                         "O(B*C) ms": f"{t_fast:.2f}", "B x C x C ms": f"{t_slow:.2f}",
                         "speed-up": f"{t_slow / t_fast:.1f}x",
                         "O(B*C) peak MB": f"{_peak_mb(run(fast)):.2f}", "B x C x C peak MB": f"{_peak_mb(run(slow)):.1f}"})
    return cand, rows


def equivalence_table(ctx, m: dict) -> Table:
    cand, rows = equivalence_rows(ctx, m["data"])
    if cand is None:
        t = Table("equivalence", "Paper 2 Theorem 1 and the O(B*C) form: missing (no finished distilled run with "
                                 "saved logits).", EQ_COLUMNS)
        t.add({"check": MISSING})
        return t
    what = (f"Paper 2 Theorem 1 and App. A.5, checked on real logits: the first {rows[0]['batch']} test samples of run "
            f"{cand['run']['run']} (KD student of {m['data']['pair']}, seed {cand['seed']}) and its teacher, float64 "
            f"gradients; then the O(B*C) loss against the official B x C x C form in float64 (differences) and "
            f"float32 (time: median of 5 on the machine that rendered this table; peak: exact live-tensor bytes, "
            f"gradient included), at {rows[1]['classes']} classes and at {m['data']['big_classes']} (random logits).")
    t = Table("equivalence", caption(what, profile=m["profile"], seeds=m["seeds"], statistic="one run"), EQ_COLUMNS)
    for r in rows:
        t.add(r)
    return t


def kl_dkl_gradient(ctx, data: dict) -> tuple[str, str]:
    _, rows = equivalence_rows(ctx, data)
    if not rows:
        return MISSING, MISSING
    err = float(rows[0]["gradient max |diff|"])
    return f"max |grad kl − grad dkl| = {err:.1e} on {rows[0]['batch']} real samples (float64)", \
        "yes" if err < 1e-10 else "no"


def obc_equals_bcc(ctx, data: dict) -> tuple[str, str]:
    _, rows = equivalence_rows(ctx, data)
    forms = rows[1:]
    if not forms:
        return MISSING, MISSING
    worst_v = max(float(r["value |diff|"]) for r in forms)
    worst_g = max(float(r["gradient max |diff|"]) for r in forms)
    speed = ", ".join(f"{r['check'].split(':')[0]} at {r['classes']} classes {r['speed-up']}" for r in forms)
    return (f"largest |value diff| {worst_v:.1e}, gradient {worst_g:.1e} (float64); {speed} faster",
            "yes" if worst_v < 1e-9 and worst_g < 1e-9 else "no")


# --- global weights ----------------------------------------------------------------------
def _loss_state(ctx, run_id: str) -> dict | None:
    f = ctx.files(run_id)
    if f is None or not (f.path / "checkpoint.pt").exists():
        return None
    return torch.load(f.path / "checkpoint.pt", map_location="cpu", weights_only=False).get("loss")


def _order(cof, num_classes: int) -> list[int]:
    return sorted(range(num_classes), key=lambda c: (cof[c], c)) if cof else list(range(num_classes))


def per_class(o: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(accuracy %, mean margin z_y - max_{j != y} z_j) per class on the test set."""
    z, y = o["logits"].double(), o["labels"]
    C = z.shape[1]
    true = z.gather(1, y[:, None]).squeeze(1)
    other = z.scatter(1, y[:, None], -math.inf).max(1).values
    count = torch.bincount(y, minlength=C).clamp(min=1).double()
    acc = torch.zeros(C, dtype=torch.float64).index_add_(0, y, (z.argmax(1) == y).double()) / count
    margin = torch.zeros(C, dtype=torch.float64).index_add_(0, y, true - other) / count
    return 100 * acc, margin


def global_weights_table(ctx, m: dict) -> Table:
    d = m["data"]
    cols = ["seed", "prior diagonal (final)", "prior change, last epoch", "sibling mass of the prior",
            "accuracy GI on − off (points)", "classes better with GI", "margin GI on − off"]
    t = Table("global_weights", caption(
        f"Paper 2 class-wise global weights on {d['pair']}: the prior an IKL-KD (GI on) run built (mean teacher "
        "probability per true class, from its checkpoint), and what global weights changed per class against the "
        "same seed's IKL-KD with sample-wise weights (test set).", profile=m["profile"], seeds=m["seeds"],
        statistic="last epoch, per seed",
        note="Sibling mass: the prior's probability on the other fine classes of the row's coarse class "
             "(where the data set has coarse classes)."), cols)
    for on, off in zip(d["on"], d["off"]):
        state, o_on, o_off = _loss_state(ctx, on["run"]), ctx.outputs(on["run"]), ctx.outputs(off["run"])
        seed = ctx.df.loc[on["run"], "seed"] if on["run"] in ctx.df.index else MISSING
        row = {"seed": seed}
        if state is not None and state.get("prior") is not None:
            prior = state["prior"].double()
            row["prior diagonal (final)"] = f"{prior.diagonal().mean().item():.3f}"
            hist = state.get("history") or []
            row["prior change, last epoch"] = f"{hist[-1]['change']:.2e}" if len(hist) > 1 else MISSING
            if d.get("coarse_of_fine"):
                cof = torch.as_tensor(d["coarse_of_fine"])
                sib = (cof[None, :] == cof[:, None]) & ~torch.eye(len(cof), dtype=torch.bool)
                row["sibling mass of the prior"] = f"{(prior * sib).sum(1).mean().item():.3f}"
        if o_on is not None and o_off is not None:
            (acc_on, mar_on), (acc_off, mar_off) = per_class(o_on), per_class(o_off)
            row["accuracy GI on − off (points)"] = f"{(acc_on - acc_off).mean().item():+.2f}"
            row["classes better with GI"] = f"{int((acc_on > acc_off).sum())} / {int((acc_on < acc_off).sum())} worse"
            row["margin GI on − off"] = f"{(mar_on - mar_off).mean().item():+.3f}"
        t.add(row)
    return t


def global_weights_figure(ctx, m: dict, path: Path) -> Path:
    """Left: the final class prior (log colour, coarse order). Middle: its change per epoch.
    Right: per-class accuracy with against without global weights (seed pairs pooled)."""
    d = m["data"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.4), gridspec_kw={"width_ratios": [1.2, 1, 1]})
    state = _loss_state(ctx, d["on"][0]["run"])
    if state is None or state.get("prior") is None:
        for ax in axes:
            ax.text(0.5, 0.5, "missing", ha="center", va="center", transform=ax.transAxes)
        return save_figure(fig, path, "Class-wise global weights: missing", fontsize=11, dpi=110)
    prior = state["prior"].double()
    order = _order(d.get("coarse_of_fine"), prior.shape[0])
    from matplotlib.colors import LogNorm

    sns.heatmap(prior[order][:, order].clamp(min=1e-5).numpy(), ax=axes[0], cmap="magma",
                norm=LogNorm(vmin=1e-5, vmax=1), square=True, xticklabels=False, yticklabels=False,
                cbar_kws={"label": "prior weight (log scale)"})
    axes[0].set_title("Final class prior (rows: true class; coarse order)", fontsize=10)
    axes[0].set_xlabel("class")
    axes[0].set_ylabel("true class")
    hist = state.get("history") or []
    if len(hist) > 1:
        ep = [h["epoch"] for h in hist[1:]]
        axes[1].semilogy(ep, [max(h["change"], 1e-12) for h in hist[1:]], color="C0", label="mean |Δ prior| per epoch")
        ax2 = axes[1].twinx()
        ax2.plot([h["epoch"] for h in hist], [h["diagonal"] for h in hist], color="C1", label="mean diagonal")
        ax2.set_ylabel("mean diagonal (own class)", color="C1")
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("mean absolute change of the prior")
        axes[1].legend(fontsize=8, loc="upper right")
    axes[1].set_title("How the prior evolves (frozen teacher: only augmentation moves it)", fontsize=10)
    accs_on, accs_off = [], []
    for on, off in zip(d["on"], d["off"]):
        o_on, o_off = ctx.outputs(on["run"]), ctx.outputs(off["run"])
        if o_on is not None and o_off is not None:
            accs_on.append(per_class(o_on)[0])
            accs_off.append(per_class(o_off)[0])
    if accs_on:
        a_on, a_off = torch.stack(accs_on).mean(0).numpy(), torch.stack(accs_off).mean(0).numpy()
        axes[2].scatter(a_off, a_on, s=10, alpha=0.7)
        lim = [min(a_off.min(), a_on.min()) - 2, 102]
        axes[2].plot(lim, lim, color="0.5", lw=1, ls="--")
        axes[2].set_xlim(lim)
        axes[2].set_ylim(lim)
        axes[2].set_xlabel("per-class test top-1 %, sample-wise weights (GI off)")
        axes[2].set_ylabel("per-class test top-1 %, global weights (GI on)")
        axes[2].set_title(f"Per class, mean over {len(accs_on)} seed(s): above the line = GI helps", fontsize=10)
    title = f"Paper 2 class-wise global weights — {d['pair']}, profile {m['profile']}"
    return save_figure(fig, path, title, fontsize=11, dpi=110)


def pair_bars(ctx, m: dict, path: Path) -> Path:
    """Grouped bars: each method's last-epoch test top-1 (mean ± std over seeds) per pair."""
    pairs, methods = m["data"]["pairs"], m["data"]["methods"]
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(pairs) + 2), 4.6))
    width = 0.8 / len(methods)
    colors = plt.cm.tab10(np.arange(len(methods)))
    for j, method in enumerate(methods):
        for i, pair in enumerate(pairs):
            s = ctx.stat(pair[method])
            if s.missing:
                continue
            ax.bar(i + (j - (len(methods) - 1) / 2) * width, s.mean, width, yerr=0 if s.n < 2 else s.std,
                   color=colors[j], capsize=2, label=method if i == 0 else None)
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels([p["pair"] for p in pairs], fontsize=8)
    ax.set_ylabel("test top-1 % (last epoch)")
    lows = [ctx.stat(p[mm]).mean for p in pairs for mm in methods if not ctx.stat(p[mm]).missing]
    if lows:
        ax.set_ylim(min(lows) - 3, max(lows) + 2)
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    ax.grid(axis="y", alpha=0.3)
    title = (f"Paper 2 Table {m['data']['table']} — profile {m['profile']}, {len(m['seeds'])} seed(s), mean ± std, "
             "last epoch")
    return save_figure(fig, path, title, fontsize=11, dpi=120)


FIGURES = {"global_weights": global_weights_figure, "pair_bars": pair_bars}
TABLES = {"equivalence": equivalence_table, "global_weights": global_weights_table}
CHECKS = {"kl_dkl_gradient": kl_dkl_gradient, "obc_equals_bcc": obc_equals_bcc}
