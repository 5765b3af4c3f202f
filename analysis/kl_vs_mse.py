"""Paper 1 (KL vs MSE, Kim et al. IJCAI 2021): tables, figures and the claims table.

Rebuilt from run directories only (config.json and summary.json through `analysis.runs`,
outputs.pt for logits and penultimate features); `reproduce.kl_vs_mse.Builder` says which
run ids make which table cell, so an absent run shows as 'missing'. Written to
results/kl_vs_mse/<profile>/:

- tau_sweep.{md,csv}, tau_sweep.png     supp. Table 12 / tau figure (+ tau_alpha_grid, students
                                        at paper scale: the alpha grid and the LMSE-vs-KL table)
- logit_matching.{md,csv}               logit distance and its mean-shift part against tau
- gradient_check.{md,csv}               autograd gradients of `kl` against the tau limits
- features.{md,csv}, features.png       penultimate features: norms, PCA, cluster spread
- label_noise.{md,csv}, label_noise.png noise-robustness (our noise assumption)
- sequential.{md,csv}                   big -> middle -> small against direct distillation
- claims.{md,csv}                       each claim, what we measured, and whether it agrees

Paper values are transcribed from /work/shared/papers.md; '[unverified]' where it says so.
They are CIFAR-100 numbers: at the mini profile compare orderings, not values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from analysis.runs import load_runs, run_path  # noqa: E402
from analysis.tables import MISSING, Paper, Stat, Table, caption, compare, seed_stat, stat_from_values  # noqa: E402
from reproduce.kl_vs_mse import EXPERIMENTS, INF, Builder, CLEAN, loss_label  # noqa: E402

# --- paper 1's numbers (papers.md, paper 1) -----------------------------------------------
# supp. Table 12: CIFAR-100, WRN-28-4 -> WRN-16-2, test top-1, last epoch; (tau, alpha) -> %
PAPER_GRID = {
    (1.0, 0.1): 72.79, (1.0, 0.5): 72.84, (1.0, 0.9): 72.87, (1.0, 1.0): 72.90,
    (3.0, 0.1): 73.76, (3.0, 0.5): 74.18, (3.0, 0.9): 74.35, (3.0, 1.0): 74.24,
    (5.0, 0.1): 73.84, (5.0, 0.5): 74.74, (5.0, 0.9): 75.24, (5.0, 1.0): 74.88,
    (20.0, 0.1): 73.51, (20.0, 0.5): 74.64, (20.0, 0.9): 75.26, (20.0, 1.0): 75.76,
    (INF, 0.1): 73.56, (INF, 0.5): 74.49, (INF, 0.9): 75.08, (INF, 1.0): 75.51,
}
PAPER_TRAIN_ALPHA1 = {1.0: 99.34, 3.0: 95.05, 5.0: 92.63, 20.0: 92.76, INF: 94.56}   # train top-1, alpha = 1
PAPER_CE = {"wrn_16_2": 72.68, "wrn_16_4": 77.28, "wrn_28_2": 75.12}                 # supp baselines
PAPER_KL20 = {"wrn_16_2": 75.76, "wrn_16_4": 78.84, "wrn_28_2": 77.28}               # tau 20, alpha 1
PAPER_SEQ = {"direct": 74.24, "middle_ce": 74.84, "kl_kl": 74.52}                     # KL tau 3 [unverified]
PAPER_SETTING = "CIFAR-100, WRN-28-4 -> WRN-16-2"
LMSE_CLAIM = Paper(None, True, text="best (no number)")


# --- context -----------------------------------------------------------------------------
@dataclass
class Context:
    builder: Builder
    out: Path
    df: object = None
    _outputs: dict = field(default_factory=dict)

    def __post_init__(self):
        self.out = Path(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if self.df is None:
            self.df = load_runs(self.builder.experiment)

    @property
    def profile(self) -> str:
        return self.builder.profile.name

    @property
    def seeds(self) -> tuple:
        return self.builder.seeds

    def stat(self, per_seed, metric="final_test_top1", digits=2) -> Stat:
        configs = per_seed.values() if isinstance(per_seed, dict) else per_seed
        ids = list(dict.fromkeys(c.run_id for c in configs))    # a shared teacher counts once
        return seed_stat(self.df, ids, metric, digits)

    def outputs(self, run_id: str):
        if run_id not in self._outputs:
            path = run_path(self.df, run_id)
            f = None if path is None else path / "outputs.pt"
            self._outputs[run_id] = torch.load(f, map_location="cpu") if f is not None and f.exists() else None
        return self._outputs[run_id]

    def per_seed_values(self, per_seed: dict, fn) -> Stat:
        """A Stat of fn(outputs) over the seeds' finished runs."""
        configs = list({c.run_id: c for c in per_seed.values()}.values())   # a shared teacher counts once
        values = []
        for c in configs:
            o = self.outputs(c.run_id)
            if o is not None:
                values.append(fn(o, c))
        return stat_from_values(values, len(configs), digits=3)

    def caption(self, what: str, note: str = "", seeds=None) -> str:
        b = self.builder
        p = b.profile
        setting = (f"Ours: {p.dataset} ({p.note}); teacher {p.teacher} (seed {b.teacher_seed}), student {p.student}.")
        return caption(f"{what} {setting}", profile=self.profile, seeds=seeds or self.seeds,
                       statistic="final epoch (paper 1 reports the last epoch)", note=note)

    def write(self, table: Table) -> list[Path]:
        return list(table.write(self.out))


def _tau(c) -> float:
    return c.loss_hparams.get("tau", math.nan)


def _alpha(c) -> float:
    return c.loss_hparams.get("alpha", 1.0)


def _first(per_seed):
    return next(iter(per_seed.values()))


def _fmt_tau(t) -> str:
    return "" if t is None or (isinstance(t, float) and math.isnan(t)) else ("inf" if math.isinf(t) else f"{t:g}")


# --- tau sweep ---------------------------------------------------------------------------
def paper_value(c) -> Paper:
    """The paper's number for a sweep row (CIFAR-100, WRN-16-2 in the student's role)."""
    if c.loss == "ce":
        return Paper(PAPER_CE["wrn_16_2"])
    if c.loss == "mse":
        return LMSE_CLAIM
    return Paper(PAPER_GRID.get((_tau(c), _alpha(c))))


def tau_sweep_table(ctx: Context, rows: dict, name: str = "tau_sweep", note: str = "") -> Table:
    b = ctx.builder
    cols = ["row", "loss", "tau", "alpha", "test top-1 % (ours)", f"paper test top-1 % ({PAPER_SETTING})",
            "agreement with teacher % (ours)", "train top-1 % (ours)", "paper train top-1 %"]
    t = Table(name, ctx.caption(
        "Paper 1 supp. Table 12 and tau figure: student test top-1 against the KL temperature, with the CE-only "
        "and LMSE students.",
        note=(f"{b.plan.note} The paper column is CIFAR-100 (another task and scale): compare orderings, not values. "
              "Train top-1 (ours) is the last epoch's running accuracy on augmented batches; tau=0.5 and LMSE have "
              "no transcribed paper number. " + note).strip()), cols)
    teacher = b.teacher()
    t.add({"row": f"teacher {teacher.model}", "loss": "CE", "test top-1 % (ours)": ctx.stat([teacher]),
           f"paper test top-1 % ({PAPER_SETTING})": Paper(None),
           "train top-1 % (ours)": ctx.stat([teacher], "final_train_top1"), "paper train top-1 %": Paper(None)})
    for label, per_seed in rows.items():
        c = _first(per_seed)
        train_paper = Paper(PAPER_TRAIN_ALPHA1.get(_tau(c))) if c.loss == "kl" and _alpha(c) == 1.0 else Paper(None)
        t.add({"row": f"student {c.model}: {label}", "loss": c.loss, "tau": _fmt_tau(_tau(c)) if c.loss == "kl" else "",
               "alpha": f"{_alpha(c):g}" if c.loss == "kl" else "", "test top-1 % (ours)": ctx.stat(per_seed),
               f"paper test top-1 % ({PAPER_SETTING})": paper_value(c),
               "agreement with teacher % (ours)": ctx.stat(per_seed, "final_agree_top1") if c.loss != "ce" else "",
               "train top-1 % (ours)": ctx.stat(per_seed, "final_train_top1"), "paper train top-1 %": train_paper})
    return t


def tau_alpha_grid(ctx: Context, rows: dict) -> Table:
    alphas = sorted({_alpha(_first(r)) for r in rows.values() if _first(r).loss == "kl"})
    taus = sorted({_tau(_first(r)) for r in rows.values() if _first(r).loss == "kl"})
    cols = ["tau"] + [f"alpha={a:g} ours" for a in alphas] + [f"alpha={a:g} paper" for a in alphas]
    t = Table("tau_alpha_grid", ctx.caption(
        f"Paper 1 supp. Table 12 as a grid: KL student test top-1 %, rows tau, columns alpha (paper: {PAPER_SETTING}).",
        note="alpha weighs KL against (1 - alpha) CE."), cols)
    by_key = {(_tau(_first(r)), _alpha(_first(r))): r for r in rows.values() if _first(r).loss == "kl"}
    for tau in taus:
        row = {"tau": _fmt_tau(tau)}
        for a in alphas:
            row[f"alpha={a:g} ours"] = ctx.stat(by_key[(tau, a)]) if (tau, a) in by_key else MISSING
            row[f"alpha={a:g} paper"] = Paper(PAPER_GRID.get((tau, a)))
        t.add(row)
    return t


def students_table(ctx: Context) -> Table:
    b = ctx.builder
    cols = ["student", "CE ours", "CE paper"]
    for tau in b.plan.extra_taus:
        cols += [f"KL tau={_fmt_tau(tau)} ours", f"KL tau={_fmt_tau(tau)} paper"]
    cols += ["LMSE ours", "LMSE paper"]
    t = Table("students", ctx.caption(
        f"Paper 1 LMSE vs KL across students (teacher {b.profile.teacher}), test top-1 %.",
        note="Paper: CIFAR-100, teacher WRN-28-4; KL at alpha = 1."), cols)
    for model in (b.profile.student, *b.plan.extra_students):
        rows = b.sweep_rows(model=model, taus=b.plan.extra_taus)
        r = {"student": model, "CE ours": ctx.stat(rows["CE"]), "CE paper": Paper(PAPER_CE.get(model)),
             "LMSE ours": ctx.stat(rows["LMSE"]), "LMSE paper": LMSE_CLAIM}
        for tau in b.plan.extra_taus:
            key = loss_label("kl", tau)
            r[f"KL tau={_fmt_tau(tau)} ours"] = ctx.stat(rows[key])
            r[f"KL tau={_fmt_tau(tau)} paper"] = Paper(PAPER_KL20.get(model) if tau == 20.0 else None)
        t.add(r)
    return t


TAU_INF_X = 100.0   # where tau = inf sits on the log axis


def _x(tau: float) -> float:
    return TAU_INF_X if math.isinf(tau) else tau


def _tau_axis(ax, taus):
    ax.set_xscale("log")
    ticks = sorted({_x(t) for t in taus})
    ax.set_xticks(ticks)
    ax.set_xticklabels(["∞" if x == TAU_INF_X else f"{x:g}" for x in ticks])
    ax.minorticks_off()
    ax.set_xlabel("KL temperature τ (α = 1)")


def _band(ax, s: Stat, color, label):
    if s.missing:
        return
    ax.axhline(s.mean, color=color, lw=1.5, ls="--", label=label)
    if s.n > 1:
        ax.axhspan(s.mean - s.std, s.mean + s.std, color=color, alpha=0.12, lw=0)


def save_figure(fig, path: Path, title: str, *, fontsize: int, dpi: int) -> Path:
    """Title, lay out, write and close a figure; returns its path."""
    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def tau_sweep_figure(ctx: Context, rows: dict, path: Path) -> Path:
    kl = [(_tau(_first(r)), r) for r in rows.values() if _first(r).loss == "kl" and _alpha(_first(r)) == 1.0]
    kl.sort(key=lambda x: _x(x[0]))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5.4))
    # accuracy
    pts = [(_x(t), ctx.stat(r)) for t, r in kl]
    pts = [(x, s) for x, s in pts if not s.missing]
    if pts:
        ax.errorbar([x for x, _ in pts], [s.mean for _, s in pts], yerr=[0 if s.n < 2 else s.std for _, s in pts],
                    marker="o", color="C0", capsize=3, lw=2, label="ours: KL student")
    _band(ax, ctx.stat(rows["CE"]), "0.4", "ours: CE student")
    _band(ax, ctx.stat(rows["LMSE"]), "C3", "ours: LMSE student")
    teacher = ctx.stat([ctx.builder.teacher()])
    ax.set_ylabel(f"test top-1 % (ours: {ctx.builder.profile.dataset})")
    ax.set_title("Student accuracy vs τ" + ("" if teacher.missing else f"  (our teacher: {teacher.mean:.1f} %)"),
                 fontsize=10)
    _tau_axis(ax, [t for t, _ in kl] + list(PAPER_TRAIN_ALPHA1))
    axp = ax.twinx()
    ptaus = sorted(PAPER_TRAIN_ALPHA1, key=_x)
    axp.plot([_x(t) for t in ptaus], [PAPER_GRID[(t, 1.0)] for t in ptaus], color="C1", marker="s", ls=":", lw=1.5,
             label=f"paper: KL ({PAPER_SETTING})")
    axp.axhline(PAPER_CE["wrn_16_2"], color="C1", ls="-.", lw=1, label="paper: CE student WRN-16-2")
    axp.set_ylabel("paper test top-1 % (CIFAR-100)", color="C1")
    axp.tick_params(axis="y", colors="C1")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = axp.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    # logit distance
    for metric, color, label in (("final_logit_dist", "C0", "‖z_s − z_t‖₂"),
                                 ("final_mean_shift", "C2", "|mean_j (z_s − z_t)|  (δ∞ part)")):
        pts = [(_x(t), ctx.stat(r, metric, 3)) for t, r in kl]
        pts = [(x, s) for x, s in pts if not s.missing]
        if pts:
            ax2.errorbar([x for x, _ in pts], [s.mean for _, s in pts],
                         yerr=[0 if s.n < 2 else s.std for _, s in pts], marker="o", color=color, capsize=3,
                         label=f"KL: {label}")
        _band(ax2, ctx.stat(rows["LMSE"], metric, 3), color, f"LMSE: {label}")
    ax2.set_ylabel("student − teacher logits, test set (ours)")
    ax2.set_title("Logit matching vs τ (dashed: LMSE student)", fontsize=10)
    _tau_axis(ax2, [t for t, _ in kl] + list(PAPER_TRAIN_ALPHA1))
    ax2.set_ylim(bottom=0)
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    title = f"Paper 1 τ sweep — profile {ctx.profile}, {len(ctx.seeds)} seed(s), mean ± std, final epoch"
    return save_figure(fig, path, title, fontsize=11, dpi=130)


def build_tau_sweep(ctx: Context) -> list[Path]:
    b = ctx.builder
    rows = b.sweep_rows(alphas=b.plan.alphas)
    written = ctx.write(tau_sweep_table(ctx, rows))
    written.append(tau_sweep_figure(ctx, rows, ctx.out / "tau_sweep.png"))
    if len(b.plan.alphas) > 1:
        written += ctx.write(tau_alpha_grid(ctx, rows))
    if b.plan.extra_students:
        written += ctx.write(students_table(ctx))
    return written


# --- logit matching ----------------------------------------------------------------------
def _agreement_from_outputs(ctx: Context, c, teacher_cfg) -> dict | None:
    """Agreement metrics of a teacher-less (CE) run, against the teacher's own saved test logits."""
    from engine.evaluate import agreement_metrics

    o, ot = ctx.outputs(c.run_id), ctx.outputs(teacher_cfg.run_id)
    if o is None or ot is None:
        return None
    return agreement_metrics(o["logits"].float(), ot["logits"].float())


LOGIT_METRICS = [("final_logit_dist", "‖z_s − z_t‖ (mean over test)"),
                 ("final_mean_shift", "|mean_j(z_s − z_t)| (δ∞ part)"),
                 ("final_centered_mse", "centred MSE (what τ=∞ matches)"),
                 ("final_logit_mse", "logit MSE (what LMSE matches)"),
                 ("final_agree_top1", "agreement with teacher %"),
                 ("final_logit_norm", "student ‖z_s‖")]


def logit_matching_table(ctx: Context) -> Table:
    b = ctx.builder
    rows = b.sweep_rows()
    teacher = b.teacher()
    ot = ctx.outputs(teacher.run_id)
    tnorm = "missing" if ot is None else f"{ot['logits'].float().norm(dim=1).mean():.3f}"
    t = Table("logit_matching", ctx.caption(
        "Paper 1 logit matching: as τ grows the KL student's logits approach the teacher's up to a per-sample "
        "shift of their mean (δ∞); LMSE matches them exactly. Test set, final epoch.",
        note=f"Teacher logit norm ‖z_t‖ = {tnorm}. The CE student's values are computed from its saved test "
             "logits against the teacher's. The paper shows this as a figure (no numbers transcribed)."),
        ["row", "loss", "tau"] + [label for _, label in LOGIT_METRICS])
    for label, per_seed in rows.items():
        c = _first(per_seed)
        r = {"row": label, "loss": c.loss, "tau": _fmt_tau(_tau(c)) if c.loss == "kl" else ""}
        for metric, col in LOGIT_METRICS:
            if c.loss == "ce":
                key = metric.removeprefix("final_")
                r[col] = ctx.per_seed_values(per_seed, lambda o, cc, k=key: (_agreement_from_outputs(ctx, cc, teacher)
                                                                              or {}).get(k, math.nan))
            else:
                r[col] = ctx.stat(per_seed, metric, 3)
        t.add(r)
    return t


def gradient_check(ctx: Context) -> Table:
    """Autograd gradients of `kl` on real logits (a saved run's test logits and its teacher's)
    against the two limits of paper 1: tau -> inf: (1/C)(d - mean_j d) per sample, d = z_s - z_t;
    tau -> 0 (loss rescaled by 1/tau, supplement): onehot(argmax z_s) - onehot(argmax z_t)."""
    from losses import build_loss
    from losses.reference import kl_inf_official_grad

    b = ctx.builder
    rows = b.sweep_rows()
    preferred = [loss_label("kl", 1.0), loss_label("kl", 3.0), "LMSE"]
    src = None
    for label in preferred + [lab for lab in rows if lab not in preferred]:
        for c in rows.get(label, {}).values():
            o = ctx.outputs(c.run_id)
            if src is None and o is not None and o.get("teacher_logits") is not None:
                src = (c, o)
    cols = ["check", "tau", "max abs error", "largest |limit| entry", "relative error", "samples within 1e-6"]
    t = Table("gradient_check", "", cols)
    if src is None:
        t.caption = "Gradient check of paper 1's tau limits: missing (no finished distilled run with saved logits)."
        t.add({"check": MISSING})
        return t
    c, o = src
    n = min(512, len(o["logits"]))
    zs0, zt = o["logits"][:n].double(), o["teacher_logits"][:n].double()
    y = o["labels"][:n]
    t.caption = (f"Paper 1 gradient limits checked by autograd (float64) on real logits: the first {n} test samples "
                 f"of run {c.run_id} ({loss_label(c.loss, _tau(c))}, seed {c.seed}) and its teacher; per-sample "
                 f"gradients (C = {zs0.shape[1]}). Error = max over samples and classes of |autograd − limit|. "
                 "τ → ∞: limit (1/C)(d − mean_j d), d = z_s − z_t; its error falls as 1/τ. τ → 0: loss × 1/τ "
                 "(supplement's rescaling), limit onehot(argmax z_s) − onehot(argmax z_t): label matching.")

    def grad(tau, rescale=False):
        zs = zs0.clone().requires_grad_(True)
        loss = build_loss("kl", tau=tau, rescale_small_tau=rescale)(zs, zt, y)
        return torch.autograd.grad(loss, zs)[0] * n     # per-sample gradient (the loss is a batch mean)

    d = zs0 - zt
    lim_inf = (d - d.mean(1, keepdim=True)) / d.shape[1]
    C = d.shape[1]
    lim_zero = torch.nn.functional.one_hot(zs0.argmax(1), C).double() - torch.nn.functional.one_hot(zt.argmax(1), C).double()

    def add(check, tau, g, lim):
        err = (g - lim).abs()
        t.add({"check": check, "tau": tau, "max abs error": f"{err.max().item():.2e}",
               "largest |limit| entry": f"{lim.abs().max().item():.3g}",
               "relative error": f"{err.max().item() / lim.abs().max().item():.2e}",
               "samples within 1e-6": f"{(err.max(1).values < 1e-6).double().mean().item() * 100:.1f} %"})

    for tau in (10.0, 100.0, 1e3, 1e4):
        add("τ → ∞ limit", f"{tau:g}", grad(tau), lim_inf)
    add("τ = ∞ closed-form loss vs official injected gradient", "inf", grad(INF), kl_inf_official_grad(zs0, zt) * n)
    for tau in (0.1, 0.01, 1e-3, 1e-4):
        add("τ → 0 limit (× 1/τ)", f"{tau:g}", grad(tau, rescale=True), lim_zero)
    return t


def build_logit_matching(ctx: Context) -> list[Path]:
    return ctx.write(logit_matching_table(ctx)) + ctx.write(gradient_check(ctx))


# --- penultimate features ----------------------------------------------------------------
FEATURE_SUBSET = 1000     # the first 1000 test samples (of the 2000 whose features each run saves)
FEATURE_CLASSES = 10      # colour at most 10 classes (CIFAR-100: classes 0..9)


def cluster_spread(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean distance of a sample to its class centroid / mean distance between class centroids
    (lower = tighter, better separated class clusters; invariant to the feature scale)."""
    f, y = features.double(), labels[: len(features)]
    classes = y.unique()
    centroids = torch.stack([f[y == k].mean(0) for k in classes])
    index = {int(k): i for i, k in enumerate(classes)}
    within = (f - centroids[torch.tensor([index[int(k)] for k in y])]).norm(dim=1).mean()
    between = torch.pdist(centroids).mean()
    return (within / between).item()


def feature_rows(ctx: Context) -> dict:
    b = ctx.builder
    sweep = b.sweep_rows(taus=b.plan.feature_taus)
    teacher = b.teacher()
    rows = {f"teacher {teacher.model}": {s: teacher for s in ctx.seeds}, "CE": sweep["CE"]}
    for tau in b.plan.feature_taus:
        rows[loss_label("kl", tau)] = sweep[loss_label("kl", tau)]
    rows["LMSE"] = sweep["LMSE"]
    return rows


def features_table(ctx: Context, rows: dict) -> Table:
    t = Table("features", ctx.caption(
        "Paper 1 penultimate representations: feature norm and class-cluster spread of teacher and students.",
        note="Feature norm: mean ‖h‖ over the test set. Spread: mean distance to the class centroid / mean distance "
             "between class centroids, on the first 2000 test samples (whose features each run saves; scale-free; lower = "
             "tighter clusters). Paper (seed summary, [unverified]): KL's δ∞ term over-expands the penultimate "
             "representation and spreads class clusters, LMSE keeps the teacher's cluster structure. The teacher is "
             "one run."),
        ["row", "feature dim", "feature norm", "cluster spread (within / between)", "test top-1 %"])
    for label, per_seed in rows.items():
        c = _first(per_seed)
        t.add({"row": label,
               "feature dim": _feature_dim(ctx, per_seed),
               "feature norm": ctx.stat(per_seed, "final_feature_norm", 3),
               "cluster spread (within / between)": ctx.per_seed_values(
                   per_seed, lambda o, cc: cluster_spread(o["features"], o["labels"])),
               "test top-1 %": ctx.stat(per_seed)})
    return t


def _feature_dim(ctx, per_seed) -> str:
    for c in per_seed.values():
        o = ctx.outputs(c.run_id)
        if o is not None:
            return str(o["features"].shape[1])
    return MISSING


def _pca2(f: torch.Tensor) -> np.ndarray:
    x = f.double() - f.double().mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    p = (x @ v[:2].T).numpy()
    # fix the sign of each component so that figures are stable across runs
    return p * np.sign(p[np.abs(p).argmax(0), [0, 1]])


def features_figure(ctx: Context, rows: dict, path: Path) -> Path:
    seed = ctx.seeds[0]
    n = len(rows)
    cols = 3
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4.2 * cols, 3.9 * ((n + cols - 1) // cols)))
    axes = np.atleast_1d(axes).ravel()
    for ax, (label, per_seed) in zip(axes, rows.items()):
        c = per_seed[seed]
        o = ctx.outputs(c.run_id)
        if o is None:
            ax.text(0.5, 0.5, f"{label}\nmissing", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([]), ax.set_yticks([])
            continue
        f, y = o["features"][:FEATURE_SUBSET], o["labels"][:FEATURE_SUBSET]
        keep = y < FEATURE_CLASSES
        p = _pca2(f[keep])
        ax.scatter(p[:, 0], p[:, 1], c=y[keep].numpy(), cmap="tab10", vmin=-0.5, vmax=9.5, s=5, alpha=0.7, lw=0)
        norm = o["feature_norms"].mean().item()
        ax.set_title(f"{label}\n‖h‖ = {norm:.2f}, spread = {cluster_spread(o['features'], o['labels']):.2f}",
                     fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[n:]:
        ax.axis("off")
    title = (f"Penultimate features, PCA of the first {FEATURE_SUBSET} test samples coloured by class "
             f"(profile {ctx.profile}, seed {seed}; axes in feature units)")
    return save_figure(fig, path, title, fontsize=10, dpi=120)


def build_features(ctx: Context) -> list[Path]:
    rows = feature_rows(ctx)
    return ctx.write(features_table(ctx, rows)) + [features_figure(ctx, rows, ctx.out / "features.png")]


# --- label noise -------------------------------------------------------------------------
def _noise_label(noise) -> str:
    return "clean" if noise.tag == "clean" else f"{noise.kind} {noise.rate:g}"


def noise_grid(ctx: Context) -> tuple[list, dict]:
    """(noise settings, {row label: {noise tag: per_seed}}), teacher row first."""
    b = ctx.builder
    settings = b.noise_settings()
    grid = {}
    for noise in settings:
        teacher = b.teacher(noise)
        grid.setdefault("teacher", {})[noise.tag] = {s: teacher for s in ctx.seeds}
        for label, per_seed in b.sweep_rows(noise=noise, taus=b.plan.noise_taus).items():
            grid.setdefault(label, {})[noise.tag] = per_seed
    return settings, grid


def noise_table(ctx: Context) -> Table:
    settings, grid = noise_grid(ctx)
    t = Table("label_noise", ctx.caption(
        "Paper 1 noisy labels: clean test top-1 % of teacher and students trained on corrupted labels.",
        note="OUR ASSUMPTION (the paper publishes no protocol): symmetric noise flips a label to a uniformly drawn "
             "other class, asymmetric maps class c -> c + 1 mod C; corruption seed 0; teacher and students see the "
             "same corrupted labels; one teacher per setting (one run), students on every seed. Paper "
             "([unverified], no numbers): KL with small τ (best at τ = 0.5) beats LMSE under noise."),
        ["row"] + [_noise_label(n) for n in settings])
    for label, by_noise in grid.items():
        r = {"row": label}
        for noise in settings:
            r[_noise_label(noise)] = ctx.stat(by_noise[noise.tag]) if noise.tag in by_noise else MISSING
        t.add(r)
    return t


def noise_figure(ctx: Context, path: Path) -> Path:
    settings, grid = noise_grid(ctx)
    sym = [n for n in settings if n.kind in ("none", "symmetric")]
    asym = [n for n in settings if n.kind == "asymmetric"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [2, 1.2]})
    styles = {"teacher": dict(color="k", ls="--", marker="x")}
    palette = iter(plt.cm.viridis(np.linspace(0, 0.85, max(1, len(ctx.builder.plan.noise_taus)))))
    for label in grid:
        if label.startswith("KL"):
            styles[label] = dict(color=next(palette), marker="o")
    styles["CE"] = dict(color="0.45", marker="s")
    styles["LMSE"] = dict(color="C3", marker="D", lw=2)
    for label, by_noise in grid.items():
        pts = [(n.rate, ctx.stat(by_noise[n.tag])) for n in sym if n.tag in by_noise]
        pts = [(x, s) for x, s in pts if not s.missing]
        if pts:
            ax.errorbar([x for x, _ in pts], [s.mean for _, s in pts], yerr=[0 if s.n < 2 else s.std for _, s in pts],
                        capsize=3, label=label, **styles.get(label, {}))
    ax.set_xlabel("symmetric label-noise rate (training labels)")
    ax.set_ylabel("clean test top-1 %")
    ax.set_xticks([n.rate for n in sym])
    ax.set_title("Symmetric noise (our assumption)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    labels = list(grid)
    for i, noise in enumerate([CLEAN] + asym):
        for j, label in enumerate(labels):
            if noise.tag not in grid[label]:
                continue
            s = ctx.stat(grid[label][noise.tag])
            if s.missing:
                continue
            st = {k: v for k, v in styles.get(label, {}).items() if k in ("color", "marker")}
            ax2.errorbar(j + (i - len(asym) / 2) * 0.3, s.mean, yerr=0 if s.n < 2 else s.std, capsize=2, ls="none",
                         mfc="none" if i == 0 else st.get("color"), **st)
    ax2.set_xticks(range(len(labels)))
    ax2.set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
    ax2.set_ylabel("clean test top-1 %")
    ax2.set_title("Asymmetric c → c+1 at " + ", ".join(f"{n.rate:g}" for n in asym)
                  + " (filled) vs clean (open)", fontsize=10)
    ax2.grid(alpha=0.3)
    title = f"Paper 1 noisy labels — profile {ctx.profile}, {len(ctx.seeds)} student seed(s), mean ± std"
    return save_figure(fig, path, title, fontsize=11, dpi=130)


def build_label_noise(ctx: Context) -> list[Path]:
    return ctx.write(noise_table(ctx)) + [noise_figure(ctx, ctx.out / "label_noise.png")]


# --- sequential --------------------------------------------------------------------------
def sequential_table(ctx: Context) -> Table:
    b = ctx.builder
    rows = b.sequential_rows()
    tau = loss_label("kl", b.plan.seq_tau)
    paper = {f"T -{tau}-> S (direct)": Paper(PAPER_SEQ["direct"]),
             f"M(CE) -{tau}-> S": Paper(PAPER_SEQ["middle_ce"], True),
             f"T -{tau}-> M -{tau}-> S": Paper(PAPER_SEQ["kl_kl"], True),
             f"middle {b.profile.middle}: CE (teacher recipe)": Paper(PAPER_CE["wrn_16_4"]),
             f"T -LMSE-> M -LMSE-> S": Paper(None), f"T -{tau}-> M -LMSE-> S": Paper(None)}
    t = Table("sequential", ctx.caption(
        f"Paper 1 sequential distillation: big T ({b.profile.teacher}) -> middle M ({b.profile.middle}) -> small S "
        f"({b.profile.student}), each arrow a loss ({tau} as the paper's sequential numbers, or LMSE), against direct "
        "T -> S; M(CE) is a middle trained with CE as the teacher.",
        note=f"Each middle is one run (seed {b.teacher_seed}; M(CE) with the teacher recipe), like the big teacher; "
             "the small students of every seed learn from it. "
             "Paper: CIFAR-100, WRN-28-4 -> WRN-16-4 -> WRN-16-2, KL τ = 3; the direct number is supp. Table 12, the "
             "others [unverified]; the paper's proposal is KL first, then MSE (no number)."),
        ["path", "test top-1 % (ours)", "paper test top-1 %", "last teacher's test top-1 % (ours)"])
    for label, per_seed in rows.items():
        c = _first(per_seed)
        teachers = {}
        for s, cc in per_seed.items():
            if cc.teachers:
                teachers[s] = _config_by_id(b, rows, cc.teachers[0])
        teacher_stat = ctx.stat({s: x for s, x in teachers.items() if x is not None}) if teachers else ""
        t.add({"path": label, "test top-1 % (ours)": ctx.stat(per_seed), "paper test top-1 %": paper.get(label, Paper(None)),
               "last teacher's test top-1 % (ours)": teacher_stat})
    return t


def _config_by_id(b: Builder, rows: dict, run_id: str):
    big = b.teacher()
    if run_id == big.run_id:
        return big
    for per_seed in rows.values():
        for c in per_seed.values():
            if c.run_id == run_id:
                return c
    return None


def build_sequential(ctx: Context) -> list[Path]:
    return ctx.write(sequential_table(ctx))


# --- claims ------------------------------------------------------------------------------
RULE = "yes if mean(A) − mean(B) > 2 SE, no if < −2 SE, else inconclusive; SE = √(s_A²/n_A + s_B²/n_B) over seeds"


def _measured(a: Stat, b: Stat, name_a: str, name_b: str, unit: str = "") -> str:
    if a.missing or b.missing:
        return f"{name_a}: {a}; {name_b}: {b}"
    return f"{name_a} {a}{unit} vs {name_b} {b}{unit} (Δ = {a.mean - b.mean:+.2f})"


def claims_table(ctx: Context) -> Table:
    b = ctx.builder
    sweep = b.sweep_rows()
    t = Table("claims", ctx.caption(
        "Paper 1's claims and what the runs of this profile say.",
        note=f"Rule for A > B claims: {RULE}. 'missing' = the runs are not there. Paper numbers are CIFAR-100; "
             "ours the profile's data set: only the direction is compared."),
        ["#", "claim", "paper says", "we measured", "agrees?"])
    k = 0

    def claim(text, paper, a: Stat, bb: Stat, name_a, name_b, unit=""):
        nonlocal k
        k += 1
        verdict, _, _ = compare(a, bb)
        t.add({"#": k, "claim": text, "paper says": paper, "we measured": _measured(a, bb, name_a, name_b, unit),
               "agrees?": verdict})

    def row(label, metric="final_test_top1", digits=2):
        return ctx.stat(sweep[label], metric, digits) if label in sweep else Stat(math.nan, math.nan, 0, len(ctx.seeds))

    kl1, kl20, klinf = loss_label("kl", 1.0), loss_label("kl", 20.0), loss_label("kl", INF)
    claim("KD helps: KL at τ = 20 beats the CE-only student", "75.76 vs 72.68 (supp.)",
          row(kl20), row("CE"), "KL τ=20", "CE")
    claim("Accuracy grows with τ: KL τ = 20 beats τ = 1 (small τ ≈ label matching)", "75.76 vs 72.90 (supp. Table 12)",
          row(kl20), row(kl1), "KL τ=20", "KL τ=1")
    claim("Small τ fits the training labels harder: train top-1 at τ = 1 above τ = 20",
          "99.34 vs 92.76 train top-1 (supp.)", row(kl1, "final_train_top1"), row(kl20, "final_train_top1"),
          "KL τ=1", "KL τ=20")
    kl_labels = [lab for lab in sweep if lab.startswith("KL")]
    kl_stats = {lab: row(lab) for lab in kl_labels}
    present = {lab: s for lab, s in kl_stats.items() if not s.missing}
    best = max(present, key=lambda lab: present[lab].mean) if present else kl20
    claim(f"LMSE beats every KL student (best KL here: {best}, chosen after the fact)",
          "LMSE best; +0.3–0.5 over KL (numbers [unverified])", row("LMSE"), kl_stats.get(best, row(kl20)), "LMSE", best)
    claim("Logits approach the teacher's as τ grows: ‖z_s − z_t‖ smaller at τ = ∞ than at τ = 1",
          "figure (logit matching as τ → ∞)", row(kl1, "final_logit_dist", 3), row(klinf, "final_logit_dist", 3),
          "τ=1 dist", "τ=∞ dist")
    claim("LMSE matches the logits more closely than KL at τ = ∞: ‖z_s − z_t‖", "LMSE = direct logit matching",
          row(klinf, "final_logit_dist", 3), row("LMSE", "final_logit_dist", 3), "τ=∞ dist", "LMSE dist")
    claim("δ∞: at τ = ∞ the student keeps a per-sample mean shift that LMSE removes", "δ∞ shifts the logit mean",
          row(klinf, "final_mean_shift", 3), row("LMSE", "final_mean_shift", 3), "τ=∞ |shift|", "LMSE |shift|")
    # gradient limits: exact numbers from the check
    k += 1
    g = gradient_check(ctx)
    errs = {(r["check"], r["tau"]): r for r in g.rows if "max abs error" in r}
    inf_rows = [r for key, r in errs.items() if key[0] == "τ → ∞ limit"]
    zero_err = [float(r["max abs error"]) for key, r in errs.items() if key[0] == "τ → 0 limit (× 1/τ)"]
    if inf_rows and zero_err:
        rel = [float(r["relative error"]) for r in inf_rows]
        decade = rel[-2] / rel[-1] if rel[-1] > 0 else math.inf
        ok = rel[-1] < 1e-2 and 5 < decade < 20 and zero_err[-1] < 1e-6
        measured = (f"relative error vs ∞-limit: τ=10 {rel[0]:.1e}, τ=1e4 {rel[-1]:.1e} ({decade:.1f}x per decade); "
                    f"τ=1e-4 ×1/τ vs argmax matching {zero_err[-1]:.1e}")
        verdict = "yes" if ok else "no"
    else:
        measured, verdict = MISSING, MISSING
    t.add({"#": k, "claim": "Gradient limits: τ → ∞ gives (1/C)(d − mean d), τ → 0 gives argmax (label) matching "
                            "(rule: relative error < 1e-2 at τ = 1e4, falling 5–20x per decade; error < 1e-6 at τ = 1e-4)",
           "paper says": "derivation", "we measured": measured, "agrees?": verdict})
    # features
    frows = feature_rows(ctx)
    claim("Penultimate features: KL at τ = ∞ expands the feature norm beyond LMSE's",
          "δ∞ over-expands the representation (seed summary) [unverified]",
          ctx.stat(frows[klinf], "final_feature_norm", 3) if klinf in frows else row(klinf, "final_feature_norm", 3),
          ctx.stat(frows["LMSE"], "final_feature_norm", 3), "KL τ=∞ ‖h‖", "LMSE ‖h‖")
    spread = lambda per_seed: ctx.per_seed_values(  # noqa: E731
        per_seed, lambda o, c: cluster_spread(o["features"], o["labels"]))
    claim("Penultimate features: KL at τ = ∞ spreads the class clusters more than LMSE (within/between spread)",
          "KL spreads clusters, LMSE keeps the teacher's structure (seed summary) [unverified]",
          spread(frows[klinf]), spread(frows["LMSE"]), "KL τ=∞ spread", "LMSE spread")
    # label noise
    settings, grid = noise_grid(ctx)
    target = next((n for n in settings if n.kind == "symmetric" and n.rate == 0.4), None) or \
        next((n for n in settings if n.tag != "clean"), None)
    kl05 = loss_label("kl", 0.5)
    if target is not None and kl05 in grid:
        tag = target.tag
        claim(f"Under label noise ({_noise_label(target)}) KL with small τ (0.5) beats LMSE",
              "small-τ KL more robust than LMSE [unverified]", ctx.stat(grid[kl05][tag]), ctx.stat(grid["LMSE"][tag]),
              "KL τ=0.5", "LMSE")
        others = {lab: ctx.stat(grid[lab][tag]) for lab in grid if lab.startswith("KL") and lab != kl05}
        others = {lab: s for lab, s in others.items() if not s.missing}
        best_other = max(others, key=lambda lab: others[lab].mean) if others else None
        if best_other:
            claim(f"Under label noise ({_noise_label(target)}) τ = 0.5 is the best KL temperature "
                  f"(vs the best other: {best_other})", "τ ≈ 0.5 best under noise [unverified]",
                  ctx.stat(grid[kl05][tag]), others[best_other], "KL τ=0.5", best_other)
    # sequential
    srows = b.sequential_rows()
    tau = loss_label("kl", b.plan.seq_tau)
    direct = srows[f"T -{tau}-> S (direct)"]
    claim(f"Sequential T -KL-> M -KL-> S beats direct T -KL-> S ({tau})", "74.52 vs 74.24 [unverified]",
          ctx.stat(srows[f"T -{tau}-> M -{tau}-> S"]), ctx.stat(direct), "T→M→S", "T→S")
    claim(f"A CE-trained middle teaches better than the big teacher (M(CE) -KL-> S vs T -KL-> S, {tau})",
          "74.84 vs 74.24 [unverified]", ctx.stat(srows[f"M(CE) -{tau}-> S"]), ctx.stat(direct), "M(CE)→S", "T→S")
    claim("The proposed order, KL then LMSE (T -KL-> M -LMSE-> S), beats direct LMSE (T -LMSE-> S)",
          "proposed (no number)", ctx.stat(srows[f"T -{tau}-> M -LMSE-> S"]),
          ctx.stat(srows["T -LMSE-> S (direct)"]), "T→M→S", "T→S LMSE")
    # alpha (paper grid)
    if 0.1 in b.plan.alphas:
        a_rows = b.sweep_rows(alphas=(0.1,), taus=(20.0,))
        claim("At τ = 20, KL alone (α = 1) beats mostly-CE (α = 0.1)", "75.76 vs 73.51 (supp. Table 12)",
              row(kl20), ctx.stat(a_rows[loss_label("kl", 20.0, 0.1)]), "α=1", "α=0.1")
    else:
        k += 1
        t.add({"#": k, "claim": "At τ = 20, KL alone (α = 1) beats mostly-CE (α = 0.1)",
               "paper says": "75.76 vs 73.51 (supp. Table 12)",
               "we measured": f"not run at profile {ctx.profile} (alpha grid is paper-scale only)",
               "agrees?": "not run"})
    return t


def build_claims(ctx: Context) -> list[Path]:
    return ctx.write(claims_table(ctx))


BUILDERS = {"tau-sweep": build_tau_sweep, "logit-matching": build_logit_matching, "features": build_features,
            "label-noise": build_label_noise, "sequential": build_sequential}


def build(builder: Builder, which=EXPERIMENTS, out_dir: Path | None = None, log=print) -> list[Path]:
    """Rebuild the tables and figures of `which` experiments and the claims table."""
    from reproduce.kl_vs_mse import out_dir_for

    ctx = Context(builder, out_dir or out_dir_for(builder.profile.name))
    written = []
    for name in which:
        written += BUILDERS[name](ctx)
    written += build_claims(ctx)
    return written


def demo_outputs(builder: Builder, rows: dict, out_dir: Path) -> list[Path]:
    """`make demo`: the tau-sweep table and figure of the demo's few taus, named kl_vs_mse_tau_sweep.*"""
    ctx = Context(builder, out_dir)
    table = tau_sweep_table(ctx, rows, name="kl_vs_mse_tau_sweep",
                            note="Demo: a few taus and one seed; the full 3-seed sweep is results/kl_vs_mse/mini/.")
    return ctx.write(table) + [tau_sweep_figure(ctx, rows, ctx.out / "kl_vs_mse_tau_sweep.png")]
