"""Paper 2: Cui, Tian, Zhong, Qi, Yu, Zhang, "Decoupled Kullback-Leibler Divergence Loss",
NeurIPS 2024 (arXiv 2305.13948; code jiequancui/DKL). Facts and settings: docs/papers.md;
reported numbers: reproduce/numbers/decoupled_kl.csv.

What it rebuilds, one subcommand and make target each (`make decoupled-kl.<name>`):
- `equivalence`: Theorem 1 on real logits of saved runs (the student gradients of `kl` and of
  `dkl` with alpha = beta = 1 at the same tau, their largest difference) and the O(B*C) wMSE
  against the B x C x C form of the official code (value, gradient, time, peak memory) at the
  data set's class count and at 1000 classes.
- `ablation`: Table 1: KL, DKL, DKL + broken asymmetry (BA), IKL (+ class-wise global weights,
  GI) on one pair with the same loss weights, and GKL's gamma on a small grid.
- `same-family`: Table 13 (teacher, CE student, KD, DKD, IKL-KD with GI off as the official
  CIFAR configs ship, and with GI on as the paper describes).
- `cross-family`: Table 14, the same columns on cross-family pairs.
- `imagenet`: Table 4 (ResNet34 -> ResNet18, ResNet50 -> MobileNetV1), paper profile only.
- `global-weights`: the class-wise prior the engine built, as a heat map in coarse-class order,
  how it changed over the epochs, and the per-class accuracy and margin of students with and
  without global weights.
- `search` (mini only): DKD's beta and IKL's alpha and T2 for the mini pairs, chosen on a
  validation split (never on the test set); the choices are declared below and checked.
Every table reports the last epoch, the mean of the last 10 epochs and the best epoch (the
official trainer and mdistiller report the best test epoch, which selects on the test set:
its row is for comparison with the paper only).

Profiles: `mini100` (default: the many-class mini data, 3 seeds; pairs deep->shallow and
wide->thin of the plain CNN family and a cross-family pair into the residual net) and `paper`
(CIFAR-100 with the mdistiller protocol and the official per-pair settings, ImageNet for
Table 4; for GPUs with the data, `--dry-run` lists the runs and their cost). Outputs:
results/decoupled_kl/<profile>/.
"""
from __future__ import annotations

from dataclasses import dataclass

from data.hier import coarse_of_fine
from reproduce.plan import (NOT_REPORTED, Best, Claim, Figure, PaperNumber as P, Plan, Runs, Section, Table, cell,
                            kl_hparams)
from reproduce.profiles import MINI100, SMOKE, Profile
from reproduce.runner import Experiment, paper_main

NAME = "decoupled_kl"
PAPER_PROFILE = Profile(
    name="paper", dataset="cifar100", teacher_recipe="mdistiller_cifar", student_recipe="mdistiller_cifar",
    seeds=(0, 1, 2), dataset_options={"norm": "mdistiller"}, device="gpu", nested_teachers=False,
    note="paper 2 official setting: CIFAR-100, the mdistiller protocol (240 epochs, batch 64, SGD 0.05/0.01, "
         "x0.1 at 150/180/210), per-pair settings of the official configs")
IMAGENET = {"dataset": "imagenet", "dataset_options": {}}
GI_T2 = 4.0      # weight temperature with class-wise global weights on CIFAR-style pairs (official GKL CIFAR config)


@dataclass(frozen=True)
class Pair:
    """One teacher -> student pair with its official (or, at mini scale, searched) settings."""
    teacher: str
    student: str
    table: str               # "13" same family, "14" cross family, "4" ImageNet
    recipe: str              # the student's recipe (mdistiller_cifar, mdistiller_cifar_light, imagenet)
    alpha: float             # IKL paper alpha: weight of the wMSE term (code BETA)
    beta: float              # IKL paper beta: weight of the soft CE term (code ALPHA)
    dkd_beta: float          # DKD's NCKD weight
    tau: float = 4.0         # soft-label temperature (code T)
    T2: float = 100.0        # weight temperature of the wMSE weights (code T2)
    warmup: int = 20         # epochs of the KD ramp of DKD and IKL-KD (mdistiller)
    kd_alpha: float = 0.9    # KD's KL share (0.1 CE): mdistiller CIFAR; ImageNet 0.5
    name: str = ""           # a role name at mini scale ("deep -> shallow")

    @property
    def key(self) -> str:
        return f"{self.teacher}->{self.student}"

    def ikl(self, class_prior: bool) -> dict:
        """IKL-KD's loss: the pair's official settings; with global weights on CIFAR-style pairs the
        weight temperature of the official CIFAR config that uses them (GKL: T2 4), since at T2 100
        the class prior is nearly uniform; ImageNet ships GI on with its own T2 (1)."""
        t2 = GI_T2 if class_prior and self.table != "4" else self.T2
        return {"alpha": self.alpha, "beta": self.beta, "tau": self.tau, "T2": t2,
                "class_prior": class_prior, "break_asymmetry": True}


def _cifar(teacher, student, table, light, code_alpha, code_beta, dkd_beta) -> Pair:
    # the official CIFAR-100 configs: T 4, T2 100, GI off; code ALPHA weights the soft CE, code BETA the wMSE
    return Pair(teacher, student, table, "mdistiller_cifar_light" if light else "mdistiller_cifar",
                alpha=code_beta, beta=code_alpha, dkd_beta=dkd_beta)


PAPER_PAIRS = (
    # Table 13, same family                               code ALPHA, code BETA, DKD beta
    _cifar("resnet56", "resnet20", "13", False, 1, 4, 2), _cifar("resnet110", "resnet32", "13", False, 1, 12, 2),
    _cifar("resnet32x4", "resnet8x4", "13", False, 1, 8, 8), _cifar("wrn_40_2", "wrn_16_2", "13", False, 3, 12, 6),
    _cifar("wrn_40_2", "wrn_40_1", "13", False, 1, 8, 6), _cifar("vgg13", "vgg8", "13", False, 1, 12, 6),
    # Table 14, cross family (MobileNet/ShuffleNet students: lr 0.01)
    _cifar("resnet32x4", "ShuffleV1", "14", True, 1, 8, 8), _cifar("wrn_40_2", "ShuffleV1", "14", True, 1, 4, 8),
    _cifar("vgg13", "MobileNetV2", "14", True, 4, 12, 6), _cifar("ResNet50", "MobileNetV2", "14", True, 1, 12, 8),
    _cifar("resnet32x4", "ShuffleV2", "14", True, 3, 12, 8),
    # Table 4, ImageNet: T 1, T2 1, GI on (official), warm-up 1 epoch; mdistiller KD: CE 0.5 / KD 0.5 at T 1
    Pair("resnet34", "resnet18", "4", "imagenet", alpha=0.5, beta=1.0, dkd_beta=0.5, tau=1.0, T2=1.0, warmup=1,
         kd_alpha=0.5),
    Pair("resnet50", "MobileNetV1", "4", "imagenet", alpha=1.0, beta=4.0, dkd_beta=2.0, tau=1.0, T2=1.0, warmup=1,
         kd_alpha=0.5),
)
PAPER_ABLATION = ("resnet34", "resnet18")     # Table 1

# Mini scale: the same structure on the many-class data (models/mini100.py), with pairs in the
# papers' regime (teacher - CE student >= 3 points and KD above CE; results/many_class: `regime`):
# the 100k plain-CNN teacher into the 13k plain-CNN student (same family) and into the 10.6k
# residual student (cross family). The earlier pairs from the 17.4k middle model were dropped: its
# gap to the shallow student was 1.55 points, and on its half-width student KD was 1.48 below CE.
# DKD's beta and IKL-KD's alpha and T2 are chosen on the validation split by the `search` section
# (3 seeds per setting); beta (soft CE weight) 1 and tau 4 as most official CIFAR configs; warm-up
# 8 of 100 epochs (20 of 240).
MINI_DKD_BETA = 1.0
MINI_IKL = {"alpha": 4.0, "T2": 4.0}
MINI_WARMUP = 8
DKD_BETAS = (1.0, 2.0, 8.0)
IKL_GRID = ((4.0, 4.0), (12.0, 4.0), (24.0, 4.0), (12.0, 100.0))     # (alpha, T2)
GKL_GAMMAS = (0.2, 1.0)
MARGIN = 0.5      # points of top-1: the smallest difference we would call a difference (equivalence band)      # the official GKL CIFAR gamma, and 1 (= IKL up to rounding)


def mini_pair(teacher, student, table, name, recipe="mini100_student") -> Pair:
    return Pair(teacher, student, table, recipe, alpha=MINI_IKL["alpha"], beta=1.0, dkd_beta=MINI_DKD_BETA,
                T2=MINI_IKL["T2"], warmup=MINI_WARMUP, name=name)


MINI_PAIRS = (
    mini_pair("cnn1d_t100", "cnn1d_s100_shallow", "13", "same family (plain CNN 100k -> 13k)"),
    mini_pair("cnn1d_t100", "res1d_s100", "14", "cross family (plain CNN -> residual net)"),
)
SMOKE_PAIRS = (mini_pair("cnn1d_teacher", "cnn1d_student", "13", "smoke: same family", "smoke"),
               mini_pair("cnn1d_medium", "cnn1d_student", "14", "smoke: cross family", "smoke"))
REFERENCE = {"13": "t13.resnet32x4->resnet8x4", "14": "t14.resnet32x4->ShuffleV1"}   # a mini pair's analogue
STATS = (("last epoch", "final_test_top1"), ("mean of last 10", "last10_test_top1"),
         ("best epoch (selects on test)", "best_test_top1"))
METHODS = ("teacher", "CE", "KD", "DKD", "IKL-KD", "IKL-KD + GI")
DEMO_METHODS = METHODS[:-1]


class Paper2:
    def __init__(self, profile: Profile, seeds: tuple):
        self.p, self.seeds = profile, seeds
        self.runs = Runs(profile, seeds, NAME)
        self.paper = profile.name == "paper"
        self.pairs = PAPER_PAIRS if self.paper else SMOKE_PAIRS if profile.name == "smoke" else MINI_PAIRS
        self.teacher_recipe = None if self.paper else profile.teacher_recipe

    # --- runs ----------------------------------------------------------------------------
    def _data(self, pair: Pair) -> dict:
        return IMAGENET if pair.table == "4" else {}

    def teacher(self, pair: Pair, seed: int | None = None):
        """The CE teacher that student seed `seed` distils (nested: teacher seed = student seed at
        mini scale; the paper profile's one teacher per pair). The paper profile trains it with the
        teacher's own recipe (lr 0.05 on CIFAR; mdistiller ships pretrained ones)."""
        recipe = ("imagenet" if pair.table == "4" else "mdistiller_cifar") if self.paper else self.teacher_recipe
        runs = self._runs(pair)
        t_seed = runs.teacher_seed if seed is None else runs.teacher_seed_for(seed)
        return runs.teacher(pair.teacher, recipe=recipe, seed=t_seed)

    def teachers(self, pair: Pair) -> tuple:
        """Every teacher of the pair the plan's seeds distil."""
        return tuple({t.run_id: t for t in (self.teacher(pair, s) for s in self.seeds)}.values())

    def _runs(self, pair: Pair) -> Runs:
        if pair.table != "4":
            return self.runs
        return Runs(Profile(**{**self.p.__dict__, **IMAGENET}), self.seeds, NAME)

    def method(self, pair: Pair, method: str, seed: int, *, hparams=None, loss=None):
        """The run of one method (reproduce/methods.py) for one seed, or, for `method` "other", the
        raw `loss` / `hparams` under the pair's DKD protocol (CE weight 1 and its warm-up)."""
        runs, t = self._runs(pair), self.teacher(pair, seed)
        if method != "other":
            return runs.method(method, pair, pair.student, seed, teachers=t, recipe=pair.recipe)
        protocol = {"ce_weight": 1.0, "kd_weight": 1.0, "warmup_epochs": pair.warmup}
        return runs.student(pair.student, loss, seed, teachers=t, recipe=pair.recipe, overrides=protocol,
                            hparams=hparams)

    def per_seed(self, pair, method, **kw) -> dict:
        if method == "teacher":
            return {s: self.teacher(pair, s) for s in self.seeds}
        return {s: self.method(pair, method, s, **kw) for s in self.seeds}

    def caption(self) -> str:
        return f"Ours: {self.p.dataset} ({self.p.note})."

    # --- Tables 13 / 14 / 4 ---------------------------------------------------------------
    def pair_table(self, table: str, name: str, title: str, pairs=None, section: str | None = None,
                   methods=METHODS) -> Section:
        pairs = pairs or [p for p in self.pairs if p.table == table]
        paper_cols = {"13": ("teacher", "student", "kd", "dkd", "ikl"), "14": ("student", "kd", "dkd", "ikl"),
                      "4": ("kd", "dkd", "ikl")}[table]
        # the paper's IKL-KD number sits beside the variant its official config runs: sample-wise weights
        # (GI off) on CIFAR, class-wise global weights (GI on, T2 1) on ImageNet
        ikl = "IKL-KD + GI" if table == "4" else "IKL-KD"
        keys = {"teacher": "teacher", "CE": "student", "KD": "kd", "DKD": "dkd", ikl: "ikl"}
        cols = ["pair", "statistic"]
        for m in methods:
            cols.append(f"{m} ours")
            if keys.get(m) in paper_cols:
                cols.append(f"{m} paper")
        rows, figure_rows = [], []
        for pair in pairs:
            cells = {m: self.per_seed(pair, m) for m in methods}
            for stat, metric in STATS:
                row = {"pair": f"{pair.key}" + (f" ({pair.name})" if pair.name else ""), "statistic": stat}
                for m in methods:
                    row[f"{m} ours"] = cell(cells[m], metric)
                    if keys.get(m) in paper_cols:
                        best_row = stat.startswith("best") and self.paper
                        row[f"{m} paper"] = P(f"t{table}.{pair.key}.{keys[m]}") if best_row else NOT_REPORTED
                rows.append(row)
            figure_rows.append({"pair": pair.key, **{m: cell(cells[m]) for m in methods}})
        note = ("IKL-KD (GI off): the official CIFAR configs (sample-wise weights, T2 from the config); (GI on): "
                f"class-wise global weights, as the paper describes, with T2 {GI_T2:g} (the official GKL CIFAR config "
                "that uses them; ImageNet: its own T2 1). The paper's numbers sit on the best-epoch row "
                "(mdistiller and the official trainer keep the best test epoch). "
                + ("Settings per pair: the official configs (docs/papers.md). " if self.paper else
                   f"Mini: KD = KL tau 4, alpha 0.9; DKD alpha 1, beta {MINI_DKD_BETA:g}; IKL-KD alpha "
                   f"{MINI_IKL['alpha']:g}, beta 1, T2 {MINI_IKL['T2']:g}, tau 4 (chosen on validation: `search`); "
                   f"DKD and IKL-KD with CE weight 1 and a KD warm-up of {MINI_WARMUP} epochs."))
        t = Table(name, f"{title} {self.caption()}", tuple(cols), tuple(rows), note=note,
                  statistic="last epoch, mean of the last 10 epochs and best epoch, as labelled")
        fig = Figure(name, "pair_bars", {"pairs": figure_rows, "methods": list(methods), "table": table})
        runs = tuple(t for p in pairs for t in self.teachers(p))
        return Section(section or name.replace("_", "-"), (t,), (fig,) if pairs else (), runs=runs)

    def imagenet(self) -> Section:
        if self.paper:
            return self.pair_table("4", "imagenet", "Paper 2 Table 4: ImageNet top-1, teacher -> student.")
        rows = tuple({"pair": p.key, "note": "paper profile only (ImageNet)",
                      **{f"{m} paper": P(f"t4.{p.key}.{k}") for m, k in (("KD", "kd"), ("DKD", "dkd"), ("IKL-KD", "ikl"))}}
                     for p in PAPER_PAIRS if p.table == "4")
        t = Table("imagenet", f"Paper 2 Table 4 (ImageNet top-1): the paper's numbers; our runs need the paper "
                  f"profile (ImageNet on GPUs). {self.caption()}",
                  ("pair", "note", "KD paper", "DKD paper", "IKL-KD paper"), rows, statistic="paper only")
        return Section("imagenet", (t,))

    # --- ablation (Table 1) ------------------------------------------------------------------
    def ablation_pair(self) -> Pair:
        if self.paper:
            return next(p for p in self.pairs if (p.teacher, p.student) == PAPER_ABLATION)
        return self.pairs[0]

    def ablation_methods(self, pair: Pair) -> dict:
        """Equal loss weights along the chain, so each row changes one thing: KL (tau^2 KL); DKL with
        alpha = beta = 1 (the same gradient); + BA (ikl without global weights: its official factor
        convention needs beta = tau^2 and T2 = tau to equal dkl(1, 1)); + GI."""
        t2 = pair.tau * pair.tau
        ba = {"alpha": 1.0, "beta": t2, "tau": pair.tau, "T2": pair.tau, "break_asymmetry": True}
        return {"KL": ("kl", {"tau": pair.tau}), "DKL": ("dkl", {"alpha": 1.0, "beta": 1.0, "tau": pair.tau}),
                "DKL + BA": ("ikl", ba), "IKL (+GI)": ("ikl", ba | {"class_prior": True}),
                **{f"GKL gamma={g:g}": ("ikl", ba | {"class_prior": True, "gamma": g}) for g in GKL_GAMMAS}}

    def ablation(self) -> Section:
        pair = self.ablation_pair()
        paper_keys = {"KL": "kl", "DKL": "dkl", "DKL + BA": "dkl_ba", "IKL (+GI)": "ikl"}
        rows, self._ablation = [], {}
        for label, (loss, hp) in self.ablation_methods(pair).items():
            per_seed = self.per_seed(pair, "other", loss=loss, hparams=hp)
            self._ablation[label] = per_seed
            rows.append({"method": label, **{stat: cell(per_seed, metric) for stat, metric in STATS},
                         "paper (ImageNet R34 -> R18)": P(f"t1.{paper_keys[label]}") if label in paper_keys else NOT_REPORTED})
        t = Table("ablation", f"Paper 2 Table 1 ablation on {pair.key}" + (f" ({pair.name})" if pair.name else "")
                  + f": one change per row. {self.caption()}",
                  ("method", *[s for s, _ in STATS], "paper (ImageNet R34 -> R18)"), tuple(rows),
                  note="Same weights along the chain (tau as the pair's, alpha 1, soft-CE weight matching DKL), CE "
                       "weight 1 and the KD warm-up of the pair's recipe. GKL: global weights raised to gamma, the "
                       "wMSE divided by the weight sum (DKLv2). The paper's row is ImageNet ResNet34 -> ResNet18.",
                  statistic="last epoch, mean of the last 10 epochs and best epoch, as labelled")
        return Section("ablation", (t,), runs=self.teachers(pair))

    # --- Theorem 1 and the O(B*C) form -------------------------------------------------------
    def equivalence(self) -> Section:
        pair = self.pairs[0]
        candidates = [{"run": c, "seed": s} for s, c in self.per_seed(pair, "KD").items()]
        t = Table("equivalence", "", kind="equivalence",
                  data={"candidates": candidates, "tau": pair.tau, "big_classes": 1000, "pair": pair.key})
        return Section("equivalence", (t,), runs=self.teachers(pair))

    # --- class-wise global weights --------------------------------------------------------
    def global_weights(self) -> Section:
        pair = self.pairs[0]
        on, off = self.per_seed(pair, "IKL-KD + GI"), self.per_seed(pair, "IKL-KD")
        hierarchy = list(coarse_of_fine()) if self.p.dataset == "mnist1d_hier" else None
        data = {"on": [on[s] for s in self.seeds], "off": [off[s] for s in self.seeds], "pair": pair.key,
                "coarse_of_fine": hierarchy}
        t = Table("global_weights", "", kind="global_weights", data=data)
        return Section("global-weights", (t,), (Figure("global_weights", "global_weights", data),),
                       runs=self.teachers(pair))

    # --- search (validation split) --------------------------------------------------------------
    def search(self) -> Section:
        """DKD's beta and IKL-KD's alpha and T2 on the validation split: 3 seeds per setting, each
        seed with its own teacher (trained on the 7000 other training signals)."""
        pair = self.pairs[0]
        val = Runs(Profile(**{**self.p.__dict__, "dataset_options": {**self.p.dataset_options, "validation": 1000}}),
                   self.seeds, NAME) if self.p.dataset == "mnist1d_hier" else self.runs
        seeds = self.seeds[:3]

        def student(loss, hp):
            return {s: val.student(pair.student, loss, s, hparams=hp, recipe=pair.recipe,
                                   teachers=val.teacher(pair.teacher, recipe=self.teacher_recipe,
                                                        seed=val.teacher_seed_for(s)),
                                   overrides={"ce_weight": 1.0, "kd_weight": 1.0, "warmup_epochs": pair.warmup})
                    for s in seeds}

        self._search = {
            "dkd": {f"beta={b:g}": student("dkd", {"alpha": 1.0, "beta": b, "tau": pair.tau}) for b in DKD_BETAS},
            "ikl": {f"alpha={a:g} T2={t2:g}": student("ikl", pair.ikl(False) | {"alpha": a, "T2": t2})
                    for a, t2 in IKL_GRID}}
        rows = [{"loss": "DKD", "setting": k, "validation top-1 %": cell(c)} for k, c in self._search["dkd"].items()]
        rows += [{"loss": "IKL-KD", "setting": k, "validation top-1 %": cell(c)} for k, c in self._search["ikl"].items()]
        table = Table("search", f"Mini hyperparameters of DKD and IKL-KD on the validation split (1000 training "
                      f"signals held out; teachers and students never see them), pair {pair.key}, seeds "
                      f"{', '.join(map(str, seeds))}, each with its own teacher. {self.caption()}",
                      ("loss", "setting", "validation top-1 %"), tuple(rows),
                      note=f"IKL-KD beta 1, tau {pair.tau:g}; DKD alpha 1; CE weight 1, warm-up {pair.warmup}.")
        teachers = tuple(val.teacher(pair.teacher, recipe=self.teacher_recipe, seed=val.teacher_seed_for(s))
                         for s in seeds)
        return Section("search", (table,), runs=teachers)

    def search_claims(self) -> list:
        if not hasattr(self, "_search"):
            return []
        dkd, ikl = self._search["dkd"], self._search["ikl"]
        return [Claim(f"DKD's beta {MINI_DKD_BETA:g} is the choice on validation", "our search",
                      Best(tuple((k, cell(c)) for k, c in dkd.items())), name_a=f"beta={MINI_DKD_BETA:g}", kind="choice"),
                Claim(f"IKL-KD's alpha {MINI_IKL['alpha']:g}, T2 {MINI_IKL['T2']:g} is the choice on validation",
                      "our search", Best(tuple((k, cell(c)) for k, c in ikl.items())),
                      name_a=f"alpha={MINI_IKL['alpha']:g} T2={MINI_IKL['T2']:g}", kind="choice")]

    # --- claims --------------------------------------------------------------------------------
    def claims(self) -> list:
        eq = self.equivalence().tables[0].data
        a = self._ablation
        out = [Claim("KL and DKL (alpha = beta = 1) have the same student gradient (Theorem 1)", "Theorem 1",
                     kind="check", data={"check": "kl_dkl_gradient", **eq}),
               Claim("The O(B*C) wMSE equals the official B x C x C form (value and gradient)", "App. A.5 identity",
                     kind="check", data={"check": "obc_equals_bcc", **eq}),
               Claim("DKL + broken asymmetry beats KL (ablation)", "{t1.dkl_ba} vs {t1.kl}", cell(a["DKL + BA"]),
                     cell(a["KL"]), "DKL+BA", "KL", unit=" points", margin=MARGIN),
               Claim("IKL (global weights) beats DKL + BA (ablation)", "{t1.ikl} vs {t1.dkl_ba}", cell(a["IKL (+GI)"]),
                     cell(a["DKL + BA"]), "IKL", "DKL+BA", unit=" points", margin=MARGIN),
               Claim(f"GKL (gamma {GKL_GAMMAS[0]:g}) beats IKL (ablation)", "DKLv2 / GKL: a flatter class prior helps",
                     cell(a[f"GKL gamma={GKL_GAMMAS[0]:g}"]), cell(a["IKL (+GI)"]), f"GKL {GKL_GAMMAS[0]:g}", "IKL",
                     unit=" points", margin=MARGIN),
               Claim("IKL-KD improves adversarial robustness (TRADES + AWP, AutoAttack)", "paper 2, Table 5-6",
                     kind="not run", reason="needs adversarial training (TRADES + AWP) and AutoAttack on CIFAR: "
                     "GPU-days, not built here"),
               Claim("ImageNet: IKL-KD beats KD and DKD (Table 4)", "{t4.resnet34->resnet18.ikl} vs "
                     "{t4.resnet34->resnet18.dkd}", kind="not run",
                     reason="needs ImageNet on GPUs (the paper profile plans it: `make decoupled-kl.imagenet "
                     "PROFILE=paper`)") if not self.paper else None]
        out = [c for c in out if c is not None]
        for pair in self.pairs:
            # the paper's numbers of this pair (paper profile) or of its classic analogue (mini scale)
            ref = f"t{pair.table}.{pair.key}" if self.paper else REFERENCE[pair.table]
            cells = {m: cell(self.per_seed(pair, m)) for m in ("IKL-KD + GI", "IKL-KD", "DKD", "KD", "CE")}
            margin = lambda m: cell(self.per_seed(pair, m), "class_margin")  # noqa: E731
            where = pair.name or pair.key
            analogue = "" if self.paper else f" ({ref.split('.', 1)[1]}, Table {pair.table})"
            out += [Claim(f"IKL-KD beats KD on {where}", f"{{{ref}.ikl}} vs {{{ref}.kd}}{analogue}", cells["IKL-KD"],
                          cells["KD"], "IKL-KD", "KD", unit=" points", margin=MARGIN),
                    Claim(f"IKL-KD beats DKD on {where}", f"{{{ref}.ikl}} vs {{{ref}.dkd}}{analogue}", cells["IKL-KD"],
                          cells["DKD"], "IKL-KD", "DKD", unit=" points", margin=MARGIN),
                    Claim(f"DKD beats KD on {where}", f"{{{ref}.dkd}} vs {{{ref}.kd}}{analogue}", cells["DKD"],
                          cells["KD"], "DKD", "KD", unit=" points", margin=MARGIN),
                    Claim(f"Global weights help IKL-KD on {where}", "the paper's IKL uses them (no number with and "
                          "without on CIFAR)", cells["IKL-KD + GI"], cells["IKL-KD"], "IKL-KD + GI", "IKL-KD",
                          unit=" points", margin=MARGIN),
                    Claim(f"IKL-KD students have larger class margins than KD students on {where} (mean true-class "
                          "logit minus the largest other, test set)", "paper 2: IKL-KD enlarges class margins",
                          margin("IKL-KD"), margin("KD"), "IKL-KD margin", "KD margin")]
        return out + self.search_claims()

    def plan(self) -> Plan:
        sections = [self.equivalence(), self.ablation(),
                    self.pair_table("13", "same_family", "Paper 2 Table 13: same-family pairs, test top-1 %."),
                    self.pair_table("14", "cross_family", "Paper 2 Table 14: cross-family pairs, test top-1 %."),
                    self.imagenet(), self.global_weights()]
        if not self.paper:
            sections.append(self.search())
        first = self.pairs[0]
        # the demo: the official CIFAR variant of IKL-KD only (GI off), so `make demo` fits its minutes
        sections.append(self.pair_table(first.table, "headline", f"Paper 2 Table {first.table} headline: one pair.",
                                        pairs=[first], section="demo", methods=DEMO_METHODS))
        return Plan(NAME, self.p, self.seeds, tuple(sections), tuple(self.claims()),
                    claims_title=f"Paper 2's claims and what the runs of this profile say. {self.caption()}",
                    claims_note="Statistic: last epoch. Paper numbers are CIFAR-100/ImageNet (best epoch); ours the "
                                "profile's data set: only the direction is compared.",
                    statistic="last epoch")


def declare(profile: Profile, seeds: tuple) -> Plan:
    return Paper2(profile, seeds).plan()


EXPERIMENT = Experiment(NAME, "Paper 2: Decoupled KL / Improved KL (Cui et al., NeurIPS 2024)", declare,
                        profiles={"paper": PAPER_PROFILE, "mini100": MINI100, "smoke": SMOKE},
                        default_profile="mini100", mini_profiles=("mini100",), demo_section="demo")
main = paper_main(EXPERIMENT, __doc__)

if __name__ == "__main__":
    main()
