"""Paper 1: Kim, Oh, Kim, Cho, Yun, "Comparing Kullback-Leibler Divergence and Mean Squared
Error Loss in Knowledge Distillation", IJCAI 2021 (arXiv 2105.08919; code jhoon-oh/kd_data).

What it rebuilds (facts and reported numbers: /work/shared/papers.md, paper 1):
- `tau-sweep`: supplement Table 12 (student test top-1 over tau in {0.5, 1, 3, 5, 20, inf} x
  alpha in {0.1, 0.5, 0.9, 1.0}, WRN-28-4 -> WRN-16-2, CIFAR-100) and its tau figure, plus the
  LMSE and CE-only students and the teacher; at paper scale also the LMSE-vs-KL table for the
  students WRN-16-4 and WRN-28-2 (KL tau 20 against LMSE against CE).
- `logit-matching`: the student-teacher logit distance ||z_s - z_t|| and its mean-shift part
  |mean_j (z_s - z_t)| (delta_inf) against tau, on the test set of the saved runs; and an exact
  check, on real logits, that the gradient of `kl` tends to the closed-form tau -> inf limit
  (1/C)(d - mean d) and, rescaled by 1/tau, to argmax (label) matching as tau -> 0.
- `features`: penultimate representations of teacher, CE, KL at small and large tau, and LMSE:
  feature norms, PCA of a fixed test subset coloured by class, class-cluster spread.
- `label-noise`: teacher and students trained on corrupted labels. OUR ASSUMPTION (the paper
  publishes no noise protocol): symmetric noise at 0.2 / 0.4 / 0.6 (uniform over the other
  classes) and asymmetric 0.4 (class c -> c + 1 mod C), corruption seed 0; rate 0 is the clean
  sweep; students KL tau in {0.5, 1, 3, 20}, LMSE, CE; clean test accuracy.
- `sequential`: big -> middle -> small with every order of KL (tau 3, as the paper's
  sequential numbers) and LMSE, a CE-trained middle as teacher, against direct distillation
  (our design: the paper publishes no code for it).
- `analyze`: rebuilds every table, figure and the claims table from run directories only.
- `teachers`: trains the teachers a profile needs (clean, noisy, the CE-trained middle).
- `all`: everything above, training what is missing, then `analyze`.

Profiles (`--profile`, reproduce/profiles.py):
- `paper`: CIFAR-100, WRN-28-4 -> WRN-16-2 (middle WRN-16-4; extra students WRN-16-4, WRN-28-2),
  the official recipe (200 epochs, SGD nesterov 0.1, x0.1 at 100/150, batch 128), seed 9999,
  full alpha grid. For a GPU with CIFAR-100 under --data-root (`--dry-run` works without it).
- `mini` (default): mnist1d (1000 training samples), 88.8k-param CNN -> 6.5k-param CNN (middle
  22.9k), seeds 0, 1, 2; cut for a ~30-minute run on 2 cores: alpha = 1 only (the paper's main
  setting; the alpha grid is paper-only), label-noise students at tau in {0.5, 3, 20}, no extra
  student models. One teacher per label-noise setting and one middle per sequential path (seed 0),
  three student seeds each. 110 runs; measured 34 min wall (56 CPU-min) with 2 processes.
- `smoke`: synthetic data, 2 epochs, for the tests; numbers mean nothing.
Every student of seed s distils from the teacher of the profile's first seed (0 mini, 9999 paper).

Outputs: run directories in results/kl_vs_mse/runs/<run-id>/ (teachers in results/teachers/;
the run id holds the data set, so profiles coexist); tables (.md + .csv), figures (.png) and
claims.md in results/kl_vs_mse/<profile>/ ($LOGIT_KD_RESULTS overrides `results`). The
committed mini outputs are in results/kl_vs_mse/mini/.

    python -m reproduce.kl_vs_mse all                      # mini, every experiment (make kl-vs-mse)
    python -m reproduce.kl_vs_mse tau-sweep --profile paper --data-root /data --dry-run
    python -m reproduce.kl_vs_mse analyze                  # tables/figures/claims from the run dirs
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine import LabelNoise, RunConfig, RunDir, make_config, teacher_config, train_group
from engine.rundir import results_root
from engine.sweep import run_parallel, schedule
from reproduce.cli import main_guard, threads_per_process
from reproduce.profiles import Profile, get_profile

EXPERIMENT = "kl_vs_mse"
INF = float("inf")
CLEAN = LabelNoise()
EXPERIMENTS = ("tau-sweep", "logit-matching", "features", "label-noise", "sequential")
COMMANDS = ("teachers", *EXPERIMENTS, "analyze", "all")


@dataclass(frozen=True)
class Plan:
    """Which runs each experiment needs at one profile (the paper's grid or our mini choices)."""
    taus: tuple                     # KL temperatures of the sweep
    alphas: tuple                   # KL share alpha (1 - alpha on CE); 1.0 = KL only, the paper's main runs
    feature_taus: tuple             # KL taus shown in the feature figure: (small, large, inf)
    noise: tuple                    # ((kind, rate), ...) corrupted-label settings: OUR ASSUMPTION
    noise_taus: tuple               # KL taus of the label-noise experiment
    seq_tau: float = 3.0            # KL tau of sequential distillation (paper's sequential numbers use 3)
    extra_students: tuple = ()      # other student models for the LMSE-vs-KL table
    extra_taus: tuple = ()          # KL taus for those students
    note: str = ""                  # what this plan cuts relative to the paper (goes into captions)


NOISE_ASSUMPTION = (("symmetric", 0.2), ("symmetric", 0.4), ("symmetric", 0.6), ("asymmetric", 0.4))
PLANS = {
    "paper": Plan(taus=(0.5, 1.0, 3.0, 5.0, 20.0, INF), alphas=(0.1, 0.5, 0.9, 1.0),
                  feature_taus=(1.0, 20.0, INF), noise=NOISE_ASSUMPTION, noise_taus=(0.5, 1.0, 3.0, 20.0),
                  extra_students=("wrn_16_4", "wrn_28_2"), extra_taus=(20.0,),
                  note="paper grid: tau x alpha as supplement Table 12."),
    "mini": Plan(taus=(0.5, 1.0, 3.0, 5.0, 20.0, INF), alphas=(1.0,),
                 feature_taus=(1.0, 20.0, INF), noise=NOISE_ASSUMPTION, noise_taus=(0.5, 3.0, 20.0),
                 note="mini: alpha = 1 only (the paper's main setting; its alpha grid 0.1/0.5/0.9 is run at "
                      "paper scale only); no extra student models; label noise with KL tau in {0.5, 3, 20} "
                      "(tau = 1 cut for time)."),
    "smoke": Plan(taus=(0.5, 1.0, 20.0, INF), alphas=(1.0, 0.5), feature_taus=(1.0, 20.0, INF),
                  noise=(("symmetric", 0.4), ("asymmetric", 0.4)), noise_taus=(0.5, 20.0),
                  extra_students=("cnn1d_medium",), extra_taus=(3.0,), note="smoke: tests only."),
}

# --- cost model for --dry-run ------------------------------------------------------------
# mini: seconds per epoch per run, measured in the full mini run on this project's 2-core CPU
# machine (2026-11-29, torch 2.14.1, fp32, two processes of one thread; results/kl_vs_mse/mini/
# timings.csv), including the test evaluation (every epoch for teachers, every 5th + the last
# 10 for students: recipe eval_every); the teacher forward on the training batches is paid once
# per group.
MINI_EPOCH_S = {"cnn1d_teacher": 1.0, "cnn1d_medium": 0.22, "cnn1d_student": 0.067}
MINI_TEACHER_FORWARD_S = {"cnn1d_teacher": 0.08, "cnn1d_medium": 0.04, "cnn1d_student": 0.01}
# paper: ASSUMED training throughput in images/s on one A100-class GPU (fp32/TF32, batch 128),
# not measured here; evaluation and the teacher forward at 3x that rate.
PAPER_TRAIN_IMG_S = {"wrn_28_4": 4000, "wrn_16_4": 6000, "wrn_28_2": 7000, "wrn_16_2": 12000}
CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000


def cost_note(profile: str) -> str:
    if profile == "paper":
        return ("GPU-hours from ASSUMED training throughputs on one A100-class GPU (images/s: "
                + ", ".join(f"{m} {v}" for m, v in PAPER_TRAIN_IMG_S.items())
                + "; eval and teacher forward at 3x), not measured")
    if profile == "mini":
        return ("CPU-minutes from per-epoch times measured on a 2-core CPU (one process per core; s/epoch: "
                + ", ".join(f"{m} {v}" for m, v in MINI_EPOCH_S.items()) + "; teacher forward per group "
                + ", ".join(f"{m} {v}" for m, v in MINI_TEACHER_FORWARD_S.items()) + ")")
    return "smoke: seconds"


# --- the runs ----------------------------------------------------------------------------
@dataclass
class Builder:
    """Makes the RunConfigs of paper 1's experiments at one profile; the analysis uses the same
    builder to know which run ids make which table cell."""
    profile: Profile
    plan: Plan
    seeds: tuple
    experiment: str = EXPERIMENT
    labels: dict = field(default_factory=dict)      # run id -> short human label (dry-run listing)

    @property
    def teacher_seed(self) -> int:
        return self.profile.seeds[0]

    def model_options(self, model: str) -> dict:
        return dict(self.profile.student_options) if model == self.profile.student else {}

    def teacher(self, noise: LabelNoise = CLEAN, model: str | None = None) -> RunConfig:
        """A CE teacher in the teacher store (the big model, or the middle one)."""
        p = self.profile
        model = model or p.teacher
        cfg = teacher_config(p.dataset, model, seed=self.teacher_seed, recipe=p.teacher_recipe,
                             recipe_overrides=p.recipe_overrides or None, dataset_options=p.dataset_options,
                             model_options=self.model_options(model) or None, label_noise=noise)
        self.labels[cfg.run_id] = f"teacher {model} (CE, {noise.tag}, seed {self.teacher_seed})"
        return cfg

    def student(self, loss: str, seed: int, *, tau: float | None = None, alpha: float = 1.0,
                teacher: RunConfig | None = None, model: str | None = None,
                noise: LabelNoise = CLEAN) -> RunConfig:
        """A student run. `ce` has no teacher (the CE-only baseline); `kl` and `mse` distil from
        `teacher` (default: the clean big teacher). Hyperparameters at their defaults are left
        out of the config (alpha = 1), so equal runs of other scripts get the same run id."""
        p = self.profile
        model = model or p.student
        hp = {}
        if loss == "kl":
            hp = {"tau": float(tau)} | ({} if alpha == 1.0 else {"alpha": float(alpha)})
        teachers = ()
        if loss != "ce":
            teacher = teacher or self.teacher(noise)
            teachers = (teacher.run_id,)
        cfg = make_config(self.experiment, p.dataset, model, loss=loss, loss_hparams=hp, teachers=teachers,
                          recipe=p.student_recipe, recipe_overrides=p.recipe_overrides or None, seed=seed,
                          dataset_options=p.dataset_options, model_options=self.model_options(model) or None,
                          label_noise=noise)
        src = "" if not teachers else f" <- {self.labels.get(teachers[0], teachers[0])}"
        self.labels[cfg.run_id] = f"{model} {loss_label(loss, tau, alpha)} seed {seed}{src}"
        return cfg

    # Rows of the experiments: label -> {seed: config}
    def sweep_rows(self, model: str | None = None, noise: LabelNoise = CLEAN, taus=None, alphas=None) -> dict:
        teacher = self.teacher(noise)
        rows = {"CE": {s: self.student("ce", s, model=model, noise=noise) for s in self.seeds}}
        for alpha in (alphas if alphas is not None else (1.0,)):
            for tau in (taus if taus is not None else self.plan.taus):
                rows[loss_label("kl", tau, alpha)] = {
                    s: self.student("kl", s, tau=tau, alpha=alpha, teacher=teacher, model=model, noise=noise)
                    for s in self.seeds}
        rows["LMSE"] = {s: self.student("mse", s, teacher=teacher, model=model, noise=noise) for s in self.seeds}
        return rows

    def noise_settings(self) -> list[LabelNoise]:
        return [CLEAN] + [LabelNoise(kind, rate, 0) for kind, rate in self.plan.noise]

    def sequential_rows(self) -> dict:
        """label -> {seed: config}; the middles first (rows prefixed 'middle'). Each middle is one run
        (seed = the teacher's), like the big teacher: students of every seed learn from it."""
        big, mid, tau, ts = self.teacher(), self.profile.middle, self.plan.seq_tau, self.teacher_seed
        mid_ce = self.teacher(model=mid)
        rows = {f"middle {mid}: CE (teacher recipe)": {s: mid_ce for s in self.seeds}}
        middles = {}
        for loss in ("kl", "mse"):
            m = self.student(loss, ts, tau=tau if loss == "kl" else None, teacher=big, model=mid)
            middles[loss] = m
            rows[f"middle {mid}: T -{loss_label(loss, tau)}-> M"] = {s: m for s in self.seeds}
        for loss in ("kl", "mse"):
            t = tau if loss == "kl" else None
            rows[f"T -{loss_label(loss, tau)}-> S (direct)"] = {s: self.student(loss, s, tau=t, teacher=big)
                                                             for s in self.seeds}
        for loss in ("kl", "mse"):
            t = tau if loss == "kl" else None
            rows[f"M(CE) -{loss_label(loss, tau)}-> S"] = {s: self.student(loss, s, tau=t, teacher=mid_ce)
                                                          for s in self.seeds}
        for first in ("kl", "mse"):
            for second in ("kl", "mse"):
                t = tau if second == "kl" else None
                rows[f"T -{loss_label(first, tau)}-> M -{loss_label(second, tau)}-> S"] = {
                    s: self.student(second, s, tau=t, teacher=middles[first]) for s in self.seeds}
        return rows

    def runs(self, experiment: str) -> list[RunConfig]:
        """Every config one experiment needs (teachers included), in no particular order."""
        plan, out = self.plan, []

        def add(rows):
            for per_seed in rows.values():
                out.extend(per_seed.values())

        if experiment == "teachers":
            out += [self.teacher(n) for n in self.noise_settings()] + [self.teacher(model=self.profile.middle)]
        elif experiment in ("tau-sweep", "logit-matching"):
            out.append(self.teacher())
            add(self.sweep_rows(alphas=plan.alphas if experiment == "tau-sweep" else (1.0,)))
            if experiment == "tau-sweep":
                for model in plan.extra_students:
                    add(self.sweep_rows(model=model, taus=plan.extra_taus))
        elif experiment == "features":
            out.append(self.teacher())
            add(self.sweep_rows(taus=plan.feature_taus))
        elif experiment == "label-noise":
            for noise in self.noise_settings():
                out.append(self.teacher(noise))
                add(self.sweep_rows(noise=noise, taus=plan.noise_taus))
        elif experiment == "sequential":
            out.append(self.teacher())
            add(self.sequential_rows())
        else:
            raise ValueError(experiment)
        return out


def loss_label(loss: str, tau: float | None = None, alpha: float = 1.0) -> str:
    if loss == "ce":
        return "CE"
    if loss == "mse":
        return "LMSE"
    t = "inf" if tau is not None and math.isinf(tau) else f"{tau:g}"
    return f"KL tau={t}" + ("" if alpha == 1.0 else f" alpha={alpha:g}")


def builder_for(profile: str, seeds=None, experiment: str = EXPERIMENT) -> Builder:
    p = get_profile(profile)
    return Builder(p, PLANS[profile], tuple(seeds) if seeds else tuple(p.seeds), experiment)


# --- scheduling: engine.sweep.schedule (dedupe, stages by teacher depth, groups by data stream)


def model_of(run_id: str) -> str:
    """The model of a run from its id (the slug starts with the model name; names have no '-')."""
    return run_id.split("-")[0]


def group_cost_s(group: list[RunConfig], profile: str) -> float:
    """Estimated seconds to train a group (mini: one CPU process; paper: one GPU)."""
    epochs = group[0].recipe["epochs"]
    teacher_models = [model_of(t) for t in group[0].teachers]
    if profile == "smoke":
        return 0.5 * len(group)
    if profile == "paper":
        tput = lambda m: PAPER_TRAIN_IMG_S.get(m, 5000)  # noqa: E731
        per_epoch = sum(CIFAR_TRAIN / tput(c.model) + CIFAR_TEST / (3 * tput(c.model)) for c in group)
        per_epoch += sum(CIFAR_TRAIN / (3 * tput(m)) for m in teacher_models)
    else:
        per_epoch = sum(MINI_EPOCH_S.get(c.model, 0.1) for c in group)
        per_epoch += sum(MINI_TEACHER_FORWARD_S.get(m, 0.05) for m in teacher_models)
    return epochs * per_epoch


# --- running -----------------------------------------------------------------------------
def default_jobs(profile: str, device: str) -> int:
    """Mini on a CPU: one process per core (small models use a second thread poorly); else 1."""
    if profile != "mini" or device.startswith("cuda"):
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def run_stages(stages, *, jobs: int, quiet: bool, log=print, device: str = "auto", **train_kwargs) -> list[dict]:
    """Train every unfinished group. jobs == 1: in this process, stage by stage. Else over `jobs`
    worker processes (engine.sweep.run_parallel, one torch thread each): groups that teach others
    first, then the longest first, each as soon as its teachers exist. Returns one timing row per
    trained group; raises if any group failed (after the others finished)."""
    groups = [g for stage in stages for g in stage if not all(RunDir(c).finished for c in g)]
    if not groups:
        return []
    todo = sum(1 for g in groups for c in g if not RunDir(c).finished)
    log(f"training {todo} run(s) in {len(groups)} group(s), {jobs} process(es)")
    kwargs = dict(train_kwargs, quiet=quiet, log_every=50)
    timings = []
    if jobs <= 1:
        for g in groups:        # stage order: teachers come first
            t0 = time.time()
            train_group(g, device=device, **kwargs)
            timings.append(_timing(g, time.time() - t0))
            log(f"  done {_describe(g)} in {time.time() - t0:.0f} s")
        return timings
    teaching = {t for g in groups for c in g for t in c.teachers}
    results = run_parallel(
        groups, jobs, device=device, threads=threads_per_process(), log=log,
        priority=lambda g: (not any(c.run_id in teaching for c in g), -group_cost_s(g, "mini")), **kwargs)
    bad = [(g, r) for g, r in zip(groups, results) if r["status"] in ("failed", "blocked")]
    if bad:
        first = next((r for _, r in bad if r["status"] == "failed"), bad[0][1])
        raise RuntimeError(f"{len(bad)} of {len(groups)} group(s) did not finish; first error: {first['error']}"
                           + (f"\n{first['traceback']}" if first.get("traceback") else ""))
    return [_timing(g, r["seconds"]) for g, r in zip(groups, results) if r["status"] == "ok"]


def _describe(group) -> str:
    c = group[0]
    losses = ", ".join(sorted({loss_label(x.loss, x.loss_hparams.get("tau"), x.loss_hparams.get("alpha", 1.0))
                               for x in group}))
    models = "/".join(sorted({x.model for x in group}))
    src = f" <- {model_of(c.teachers[0])}" if c.teachers else ""
    return f"[{models}{src} seed {c.seed} {c.label_noise.tag}: {losses}]"


def _timing(group, seconds) -> dict:
    c = group[0]
    return {"runs": len(group), "models": "/".join(sorted({x.model for x in group})), "seed": c.seed,
            "noise": c.label_noise.tag, "epochs": c.recipe["epochs"],
            "teacher": model_of(c.teachers[0]) if c.teachers else "", "seconds": round(seconds, 1)}


def dry_run(builder: Builder, stages, profile: str, log=print) -> float:
    """List every run (model, loss, epochs, estimated cost, status); return the total cost in seconds."""
    unit, scale = ("GPU-h", 3600.0) if profile == "paper" else ("CPU-min", 60.0)
    log(f"# {profile} profile: {sum(len(g) for s in stages for g in s)} runs in "
        f"{sum(len(s) for s in stages)} groups; cost: {cost_note(profile)}")
    log(f"{'stage':>5} {'group':>5}  {'status':<8} {'model':<15} {'loss':<22} {'noise':<8} {'seed':>5} "
        f"{'epochs':>6} {'cost ' + unit:>12}  teacher")
    total = 0.0
    for si, stage in enumerate(stages):
        for gi, g in enumerate(stage):
            gcost = group_cost_s(g, profile)
            total += gcost
            for c in g:
                status = "done" if RunDir(c).finished else ("started" if RunDir(c).started else "todo")
                tau = c.loss_hparams.get("tau")
                teacher = builder.labels.get(c.teachers[0], c.teachers[0]) if c.teachers else "-"
                log(f"{si:>5} {gi:>5}  {status:<8} {c.model:<15} "
                    f"{loss_label(c.loss, tau, c.loss_hparams.get('alpha', 1.0)):<22} {c.label_noise.tag:<8} "
                    f"{c.seed:>5} {c.recipe['epochs']:>6} {gcost / len(g) / scale:>12.2f}  {teacher}")
    jobs = default_jobs(profile, "cpu")
    log(f"# total: {total / scale:.2f} {unit}"
        + (f" of one process; about {total / scale / jobs:.0f} wall-minutes with {jobs} processes"
           if profile == "mini" else ""))
    return total


def out_dir_for(profile: str) -> Path:
    return results_root() / EXPERIMENT / profile


def run(command: str, *, profile: str = "mini", seeds=None, device: str = "auto", data_root=None,
        quiet: bool = False, dry: bool = False, jobs: int | None = None, download: bool = False,
        log=print) -> list[Path]:
    """Train what `command` needs (unless dry) and rebuild its tables/figures; returns written files."""
    builder = builder_for(profile, seeds)
    experiments = {"all": EXPERIMENTS, "analyze": ()}.get(command, (command,))
    configs = [c for e in experiments for c in builder.runs(e)]
    stages = schedule(configs)
    if dry:
        dry_run(builder, stages, profile, log)
        return []
    if command != "analyze":
        jobs = jobs or default_jobs(profile, device)
        t0 = time.time()
        timings = run_stages(stages, jobs=jobs, quiet=quiet, log=log, device=device, data_root=data_root,
                             download=download)
        if timings:
            log(f"trained {sum(t['runs'] for t in timings)} run(s) in {time.time() - t0:.0f} s wall")
            _write_timings(out_dir_for(profile), timings, time.time() - t0, jobs)
    if command == "teachers":
        return []
    from analysis import kl_vs_mse as analysis

    which = EXPERIMENTS if command in ("all", "analyze") else (command,)
    return analysis.build(builder, which, out_dir_for(profile), log=log)


def _write_timings(out: Path, timings: list[dict], wall: float, jobs: int) -> None:
    import csv

    out.mkdir(parents=True, exist_ok=True)
    path = out / "timings.csv"
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*timings[0], "jobs", "batch_wall_s", "when"])
        if f.tell() == 0:
            writer.writeheader()
        stamp = time.strftime("%Y-%m-%d %H:%M")
        for t in timings:
            writer.writerow(t | {"jobs": jobs, "batch_wall_s": round(wall, 1), "when": stamp})


# --- make demo ---------------------------------------------------------------------------
DEMO_TAUS = (1.0, 3.0, 20.0, INF)


def demo_headline(profile: str = "mini", seeds=(0,), out_dir: Path | None = None, quiet: bool = False,
                  experiment: str = "demo", jobs: int | None = None) -> list[Path]:
    """The demo's paper-1 headline: teacher, CE, KL at tau 1, 3, 20, inf and LMSE (mini, one seed by
    default); writes kl_vs_mse_tau_sweep.{md,csv,png} to results/demo/. Runs live under
    results/<experiment>/runs (default 'demo', where reproduce/demo.py's runs with equal configs
    are found again)."""
    builder = Builder(get_profile(profile), PLANS[profile], tuple(seeds), experiment)
    rows = builder.sweep_rows(taus=DEMO_TAUS)
    configs = [builder.teacher()] + [c for per_seed in rows.values() for c in per_seed.values()]
    run_stages(schedule(configs), jobs=jobs or default_jobs(profile, "cpu"), quiet=quiet,
               log=(lambda *a, **k: None) if quiet else print)
    from analysis import kl_vs_mse as analysis

    return analysis.demo_outputs(builder, rows, Path(out_dir) if out_dir else results_root() / "demo")


# --- command line ------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reproduce.kl_vs_mse", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=COMMANDS, help="experiment to run (trains what is missing, then its tables)")
    p.add_argument("--profile", default="mini", choices=("mini", "paper", "smoke"), help="scale (default mini)")
    p.add_argument("--seeds", type=int, nargs="+", help="student seeds (default: the profile's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    p.add_argument("--data-root", help="data folder (default $LOGIT_KD_DATA or ./data_cache)")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-100 (paper profile)")
    p.add_argument("--jobs", type=int, help="training processes (default: one per core for mini on CPU, else 1)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--dry-run", action="store_true", help="list every run with its estimated cost; train nothing")
    return p


@main_guard
def main(argv=None):
    args = build_parser().parse_args(argv)
    start = time.time()
    written = run(args.command, profile=args.profile, seeds=args.seeds, device=args.device,
                  data_root=args.data_root, quiet=args.quiet, dry=args.dry_run, jobs=args.jobs,
                  download=args.download)
    for path in written:
        print(f"wrote {path}")
    if not args.dry_run:
        print(f"{args.command} ({args.profile}) finished in {time.time() - start:.0f} s")
    return written


if __name__ == "__main__":
    main()
