"""Paper 3: "Why logit distillation works: a novel knowledge distillation technique by deriving
target augmentation and logits distortion" (TALD-KD), Information Processing & Management, 2025.
No public code, no verifiable numbers: docs/papers.md.

The objective: CE(y, f_S(x)) + lambda * KD(f_S(x), z_T + eps), noise on the teacher logits read
as an implicit ensemble of teachers. EVERY noise setting is OUR ASSUMPTION (the paper publishes
no law, scale, schedule or lambda): defaults Gaussian noise with std = scale x each sample's
teacher-logit std, constant over training, resampled at every step, lambda 1 on a KL at tau 4
(tau^2-scaled) plus CE with weight 1; the sweep varies each of them (losses/tald.py).

One subcommand and make target each (`make logit-distortion.<name>`):
- `noise-sweep`: student accuracy against the noise scale {0, 0.1, 0.25, 0.5, 1} on top of `kl`
  (tau 4) and `mse`, the noise laws (Gaussian, uniform, multiplicative on half the batches as
  Sau and Balasubramanian, TeKAP's 0.9 z + 0.1 n mixture), schedules (constant, linear decay,
  cosine) and lambda on {0.5, 1, 2}.
- `ensemble`: M = 1, 2, 4 independently trained teachers (mean of logits) against one teacher
  with noise: student accuracy, and how close the noisy targets are to the ensemble's (mean
  KL, top-1 agreement, variance of the target over noise draws).
- `dark-knowledge`: the probability mass teacher, noisy teacher and students put on the other
  classes of the true class's coarse class against all other non-targets (does noise keep the
  class structure or wash it out?).
- `robustness`: teacher-logit noise under 40 % symmetric label noise (paper 1's setup), and
  calibration (expected calibration error, reliability diagram).
- `paper-scale`: CIFAR-100, TinyImageNet, STL10 and ImageNet with standard pairs (paper profile:
  `--dry-run` lists the runs and their cost; recipes for TinyImageNet/STL10 are our choice).

Profiles: `mini100` (default; teacher cnn1d_t100 -> student cnn1d_s100_shallow, 3 seeds) and
`paper`. Outputs: results/logit_distortion/<profile>/.
"""
from __future__ import annotations

from dataclasses import dataclass

from data.hier import coarse_of_fine
from engine import LabelNoise
from reproduce.plan import Best, Claim, Figure, Plan, Runs, Section, Table, cell
from reproduce.profiles import MINI100, SMOKE, Profile
from reproduce.runner import Experiment, paper_main

NAME = "logit_distortion"
PAPER_PROFILE = Profile(
    name="paper", dataset="cifar100", teacher_recipe="mdistiller_cifar", student_recipe="mdistiller_cifar",
    seeds=(0, 1, 2), dataset_options={"norm": "mdistiller"}, device="gpu",
    note="paper 3's data sets with standard pairs; recipes: mdistiller's CIFAR protocol (CIFAR-100, and our choice "
         "for TinyImageNet and STL10), paper 2's ImageNet recipe")
ASSUMPTION = ("OUR ASSUMPTION (paper 3 publishes no noise law, scale, schedule or lambda): noise std = scale x each "
              "sample's teacher-logit std unless noted, resampled every step; objective CE + lambda KD with "
              "KD = KL tau 4 (tau^2-scaled) or logit MSE.")
SCALES = (0.0, 0.1, 0.25, 0.5, 1.0)
MSE_SCALES = (0.0, 0.25, 1.0)  # on LMSE a coarser grid (cut for time)
LAMBDAS = (0.5, 1.0, 2.0)
DEFAULT_SCALE = 0.5            # where laws, schedules and lambda are compared
LAWS = {"Gaussian": {"noise": "gaussian"}, "uniform": {"noise": "uniform"},
        "multiplicative, half the batches (Sau & Balasubramanian)": {"noise": "multiplicative", "share": 0.5},
        "mixture 0.9 z + 0.1 n (TeKAP)": {"noise": "mixture", "scale": 0.1, "scale_mode": "absolute"}}
SCHEDULES = ("constant", "linear", "cosine")
BASES = {"KL tau=4": ("kl", {"tau": 4.0}), "LMSE": ("mse", {})}
ENSEMBLE_SIZES = (1, 2, 4)
LABEL_NOISE = LabelNoise("symmetric", 0.4, 0)


@dataclass(frozen=True)
class Scale:
    """One data set at paper scale with its standard pair (paper profile)."""
    dataset: str
    dataset_options: dict
    teacher: str
    student: str
    recipe: str


PAPER_SCALES = (
    Scale("cifar100", {"norm": "mdistiller"}, "resnet32x4", "resnet8x4", "mdistiller_cifar"),
    Scale("cifar100", {"norm": "mdistiller"}, "wrn_40_2", "wrn_16_2", "mdistiller_cifar"),
    Scale("tinyimagenet", {"norm": "mdistiller"}, "resnet34", "resnet18", "mdistiller_cifar"),
    Scale("stl10", {"norm": "computed"}, "resnet34", "resnet18", "mdistiller_cifar"),
    Scale("imagenet", {}, "resnet34", "resnet18", "imagenet"),
)


class Paper3:
    def __init__(self, profile: Profile, seeds: tuple):
        self.p, self.seeds = profile, seeds
        self.runs = Runs(profile, seeds, NAME)
        self.paper = profile.name == "paper"
        small = profile.name == "smoke"
        self.teacher_model, self.student_model = (("cnn1d_teacher", "cnn1d_student") if small
                                                  else ("resnet32x4", "resnet8x4") if self.paper
                                                  else ("cnn1d_t100", "cnn1d_s100_shallow"))
        # the data set's class hierarchy where the plan knows it (smoke: two made-up coarse classes of the 4)
        self.hierarchy = (list(coarse_of_fine()) if profile.dataset == "mnist1d_hier" else [0, 0, 1, 1] if small
                          else None)

    def caption(self) -> str:
        return f"Ours: {self.p.dataset} ({self.p.note}); teacher {self.teacher_model}, student {self.student_model}."

    # --- runs ----------------------------------------------------------------------------
    def teacher(self, seed=None, noise=LabelNoise()):
        return self.runs.teacher(self.teacher_model, noise, seed=seed)

    def ensemble(self, m: int) -> tuple:
        t0 = self.runs.teacher_seed
        return tuple(self.teacher(seed=t0 + i) for i in range(m))

    def student(self, seed, *, base="KL tau=4", noise=None, lam=1.0, teachers=None, label_noise=LabelNoise()):
        """CE + lambda KD on the (noisy) teacher; no noise = the plain base loss (so scale 0 is one run)."""
        loss, hp = BASES[base]
        teachers = teachers or (self.teacher(noise=label_noise),)
        over = {"ce_weight": 1.0, "kd_weight": lam}
        if noise:
            hp = {"base": loss, **hp, **noise}
            loss = "tald"
        return self.runs.student(self.student_model, loss, seed, teachers=teachers, hparams=hp, overrides=over,
                                 noise=label_noise)

    def per_seed(self, **kw) -> dict:
        return {s: self.student(s, **kw) for s in self.seeds}

    def ce(self, label_noise=LabelNoise()) -> dict:
        return self.runs.per_seed(self.student_model, "ce", noise=label_noise)

    @staticmethod
    def gaussian(scale, **kw) -> dict | None:
        return None if scale == 0 else {"scale": scale, **kw}

    def table(self, name, what, columns, rows, note="") -> Table:
        return Table(name, f"{what} {self.caption()}", tuple(columns), tuple(rows),
                     note=(ASSUMPTION + " " + note).strip(), statistic="last epoch")

    # --- noise sweep ---------------------------------------------------------------------
    def noise_sweep(self) -> Section:
        rows, series = [], {}
        for base in BASES:
            series[base] = []
            for scale in SCALES if base == "KL tau=4" else MSE_SCALES:
                c = self.per_seed(base=base, noise=self.gaussian(scale))
                series[base].append({"scale": scale, "acc": cell(c)})
                rows.append({"setting": "scale (Gaussian, constant, lambda 1)", "base": base, "value": f"{scale:g}",
                             "test top-1 %": cell(c), "last-10 mean": cell(c, "last10_test_top1")})
        kl_default = self.per_seed(noise=self.gaussian(DEFAULT_SCALE))
        for law, kw in LAWS.items():
            c = self.per_seed(noise={"scale": DEFAULT_SCALE, **kw})
            rows.append({"setting": f"noise law (scale {kw.get('scale', DEFAULT_SCALE):g})", "base": "KL tau=4",
                         "value": law, "test top-1 %": cell(c), "last-10 mean": cell(c, "last10_test_top1")})
        for schedule in SCHEDULES[1:]:
            c = self.per_seed(noise=self.gaussian(DEFAULT_SCALE, schedule=schedule))
            rows.append({"setting": f"schedule (scale {DEFAULT_SCALE:g} at the start)", "base": "KL tau=4",
                         "value": schedule, "test top-1 %": cell(c), "last-10 mean": cell(c, "last10_test_top1")})
        for lam in LAMBDAS:
            c = self.per_seed(noise=self.gaussian(DEFAULT_SCALE), lam=lam)
            rows.append({"setting": f"lambda (scale {DEFAULT_SCALE:g})", "base": "KL tau=4", "value": f"{lam:g}",
                         "test top-1 %": cell(c), "last-10 mean": cell(c, "last10_test_top1")})
        ce = self.ce()
        rows.append({"setting": "no teacher", "base": "CE", "value": "", "test top-1 %": cell(ce),
                     "last-10 mean": cell(ce, "last10_test_top1")})
        self._sweep = {"default": kl_default, "series": series}
        table = self.table("noise_sweep", "Paper 3 noise sweep: student test top-1 % against the teacher-logit noise.",
                           ("setting", "base", "value", "test top-1 %", "last-10 mean"), rows,
                           note=f"Laws, schedules and lambda at scale {DEFAULT_SCALE:g} on KL; on LMSE the scales "
                                f"{', '.join(f'{x:g}' for x in MSE_SCALES)} only (cut for time); scale 0 is the plain "
                                "base loss (the same run for every row that has no noise).")
        figure = Figure("noise_sweep", "noise_sweep", {"series": series, "ce": cell(ce),
                                                      "teacher": cell([self.teacher()]), "dataset": self.p.dataset})
        return Section("noise-sweep", (table,), (figure,), runs=(self.teacher(),))

    # --- implicit vs real ensemble ---------------------------------------------------------
    def ensemble_section(self) -> Section:
        rows, self._ens = [], {}
        for m in ENSEMBLE_SIZES:
            c = self.per_seed(teachers=self.ensemble(m))
            self._ens[m] = c
            rows.append({"teacher": f"mean of {m} teacher(s)" if m > 1 else "one teacher", "noise": "none",
                         "test top-1 %": cell(c), "teacher test top-1 %": cell(self.ensemble(m)) if m == 1 else ""})
        for scale in SCALES[1:]:
            c = self.per_seed(noise=self.gaussian(scale))
            rows.append({"teacher": "one teacher", "noise": f"Gaussian {scale:g}", "test top-1 %": cell(c),
                         "teacher test top-1 %": ""})
        table = self.table("ensemble", "Paper 3 implicit vs real ensemble: students of M independently trained teachers "
                           "(mean of their logits) against students of one teacher with noise.",
                           ("teacher", "noise", "test top-1 %", "teacher test top-1 %"), rows,
                           note="Teachers: the same model and recipe, seeds 0..M-1.")
        teachers = list(self.ensemble(max(ENSEMBLE_SIZES)))
        targets = Table("ensemble_targets", "", kind="ensemble_targets",
                        data={"teachers": teachers, "sizes": list(ENSEMBLE_SIZES), "scales": list(SCALES[1:]),
                              "tau": 4.0, "draws": 16})
        return Section("ensemble", (table, targets), runs=tuple(teachers))

    # --- dark knowledge ------------------------------------------------------------------
    def dark_knowledge(self) -> Section:
        students = {"CE (no teacher)": self.ce(), "KD (no noise)": self.per_seed()}
        students |= {f"TALD Gaussian {s:g}": self.per_seed(noise=self.gaussian(s)) for s in SCALES[1:]}
        data = {"teacher": self.teacher(), "scales": list(SCALES), "tau": 1.0, "draws": 8,
                "coarse_of_fine": self.hierarchy,
                "students": {k: [v[s] for s in self.seeds] for k, v in students.items()}}
        self._dark = data
        t = Table("dark_knowledge", "", kind="dark_knowledge", data=data)
        return Section("dark-knowledge", (t,), (Figure("dark_knowledge", "dark_knowledge", data),),
                       runs=(self.teacher(),))

    # --- robustness: label noise and calibration -------------------------------------------
    def robustness(self) -> Section:
        rows = []
        noisy_teacher = self.teacher(noise=LABEL_NOISE)
        self._robust = {}
        for tag, ln in (("clean", LabelNoise()), ("symmetric 0.4", LABEL_NOISE)):
            runs = {"CE": self.ce(ln), "KD": self.per_seed(label_noise=ln),
                    f"TALD {DEFAULT_SCALE:g}": self.per_seed(noise=self.gaussian(DEFAULT_SCALE), label_noise=ln)}
            self._robust[tag] = runs
            for name, c in runs.items():
                rows.append({"training labels": tag, "student": name, "clean test top-1 %": cell(c),
                             "ECE %": cell(c, "ece", 2)})
            t = noisy_teacher if tag != "clean" else self.teacher()
            rows.append({"training labels": tag, "student": "teacher", "clean test top-1 %": cell([t]),
                         "ECE %": cell([t], "ece", 2)})
        table = self.table("robustness", "Paper 3 robustness: teacher-logit noise under 40 % symmetric label noise "
                           "(paper 1's setup), and calibration.",
                           ("training labels", "student", "clean test top-1 %", "ECE %"), rows,
                           note="Label noise: OUR ASSUMPTION as in paper 1 (symmetric, corruption seed 0; teacher and "
                                "students see the same corrupted labels). ECE: 15 equal-width confidence bins, test set.")
        figure = Figure("reliability", "reliability", {"clean": {k: [v[s] for s in self.seeds]
                                                                for k, v in self._robust["clean"].items()}})
        return Section("robustness", (table,), (figure,), runs=(self.teacher(), noisy_teacher))

    # --- paper scale ---------------------------------------------------------------------
    def paper_scale(self) -> Section:
        if not self.paper:
            rows = tuple({"data set": s.dataset, "pair": f"{s.teacher} -> {s.student}", "note": "paper profile only"}
                         for s in PAPER_SCALES)
            return Section("paper-scale", (Table("paper_scale", "Paper 3 at paper scale: the data sets and pairs the "
                                                 "paper profile runs (CE, KD, TALD at the default noise).",
                                                 ("data set", "pair", "note"), rows, statistic="none"),))
        rows, runs = [], []
        for sc in PAPER_SCALES:
            r = Runs(Profile(**{**self.p.__dict__, "dataset": sc.dataset, "dataset_options": sc.dataset_options,
                                "teacher_recipe": sc.recipe, "student_recipe": sc.recipe}), self.seeds, NAME)
            t = r.teacher(sc.teacher)
            runs.append(t)
            over = {"ce_weight": 1.0, "kd_weight": 1.0, "warmup_epochs": 0}
            cols = {"CE": r.per_seed(sc.student, "ce"),
                    "KD": r.per_seed(sc.student, "kl", teachers=t, hparams={"tau": 4.0}, overrides=over),
                    f"TALD {DEFAULT_SCALE:g}": r.per_seed(sc.student, "tald", teachers=t, overrides=over,
                                                          hparams={"base": "kl", "tau": 4.0, "scale": DEFAULT_SCALE})}
            rows.append({"data set": sc.dataset, "pair": f"{sc.teacher} -> {sc.student}", "teacher": cell([t]),
                         **{k: cell(v) for k, v in cols.items()}})
        table = self.table("paper_scale", "Paper 3 at paper scale: CE, KD and TALD (default noise) on its data sets.",
                           ("data set", "pair", "teacher", "CE", "KD", f"TALD {DEFAULT_SCALE:g}"), rows,
                           note="Recipes: mdistiller CIFAR-100 protocol without warm-up for CIFAR-100, TinyImageNet "
                                "and STL10 (our choice for the last two), paper 2's ImageNet recipe.")
        return Section("paper-scale", (table,), runs=tuple(runs))

    # --- claims --------------------------------------------------------------------------
    def _ratio_args(self) -> dict:
        """Sibling-ratio arguments: the data set's hierarchy when the plan knows it (else the run's own
        outputs carry it, as for CIFAR-100's coarse labels)."""
        return {"tau": 1.0, **({"coarse_of_fine": self.hierarchy} if self.hierarchy else {})}

    def claims(self) -> list:
        kd, default = self.per_seed(), self._sweep["default"]
        best_noise = [(f"Gaussian {p['scale']:g}", p["acc"]) for p in self._sweep["series"]["KL tau=4"][1:]]
        out = [Claim(f"TALD (Gaussian noise, scale {DEFAULT_SCALE:g}) beats KD without noise", "TALD-KD > KD (no "
                     "verifiable number)", cell(default), cell(kd), f"TALD {DEFAULT_SCALE:g}", "KD"),
               Claim("The best noise scale beats KD without noise (best picked after the fact: {best})",
                     "TALD-KD > KD", Best(tuple(best_noise)), cell(kd), "{best}", "KD"),
               Claim(f"A real ensemble of {max(ENSEMBLE_SIZES)} teachers teaches better than one", "ensembles reduce "
                     "variance (the paper's argument)", cell(self._ens[max(ENSEMBLE_SIZES)]), cell(self._ens[1]),
                     f"mean of {max(ENSEMBLE_SIZES)}", "one teacher"),
               Claim(f"Noise acts like an ensemble: the TALD {DEFAULT_SCALE:g} student is not below the "
                     f"{max(ENSEMBLE_SIZES)}-teacher ensemble's student by more than 2 SE", "implicit ensemble",
                     cell(default), cell(self._ens[max(ENSEMBLE_SIZES)]), f"TALD {DEFAULT_SCALE:g}",
                     f"ensemble of {max(ENSEMBLE_SIZES)}", kind="not_below"),
               Claim("Dark knowledge is semantic: the teacher puts more probability per sibling class than per other "
                     "class (>= 5x at tau 1)", "non-target knowledge carries class semantics",
                     cell([self._dark["teacher"]], "sibling_ratio", 1, args=self._ratio_args()),
                     name_a="teacher ratio", kind="threshold", op=">=", bound=5.0, unit="x"),
               Claim("Students of the teacher inherit the class structure: the KD student's sibling ratio exceeds "
                     "the CE student's", "dark knowledge transfers", cell(kd, "sibling_ratio", 2, args=self._ratio_args()),
                     cell(self.ce(), "sibling_ratio", 2, args=self._ratio_args()), "KD ratio", "CE ratio"),
               Claim("Noise keeps the structure a student learns: TALD 1.0's sibling ratio is not below KD's by 2 SE",
                     "noise injects randomness, not wrong semantics (the paper's reading)",
                     cell(self.per_seed(noise=self.gaussian(1.0)), "sibling_ratio", 2, args=self._ratio_args()),
                     cell(kd, "sibling_ratio", 2, args=self._ratio_args()), "TALD 1.0 ratio", "KD ratio",
                     kind="not_below"),
               Claim(f"Under 40 % symmetric label noise TALD {DEFAULT_SCALE:g} beats KD", "noise regularises",
                     cell(self._robust["symmetric 0.4"][f"TALD {DEFAULT_SCALE:g}"]),
                     cell(self._robust["symmetric 0.4"]["KD"]), "TALD", "KD"),
               Claim(f"TALD {DEFAULT_SCALE:g} students are better calibrated than KD students (lower ECE)",
                     "not claimed by the paper (our question)", cell(self._robust["clean"]["KD"], "ece", 2),
                     cell(self._robust["clean"][f"TALD {DEFAULT_SCALE:g}"], "ece", 2), "KD ECE", "TALD ECE")]
        return out

    def demo(self) -> Section:
        """The headline: student accuracy against the noise scale on KL, and the CE student."""
        points = [{"scale": sc, "acc": cell(self.per_seed(noise=self.gaussian(sc)))} for sc in (0.0, 0.25, 0.5, 1.0)]
        rows = [{"setting": "scale (Gaussian, constant, lambda 1)", "base": "KL tau=4", "value": f"{p['scale']:g}",
                 "test top-1 %": p["acc"]} for p in points]
        ce = self.ce()
        rows.append({"setting": "no teacher", "base": "CE", "value": "", "test top-1 %": cell(ce)})
        table = self.table("headline", "Paper 3 headline: student test top-1 % against the teacher-logit noise.",
                           ("setting", "base", "value", "test top-1 %"), rows)
        figure = Figure("headline", "noise_sweep", {"series": {"KL tau=4": points}, "ce": cell(ce),
                                                   "teacher": cell([self.teacher()]), "dataset": self.p.dataset})
        return Section("demo", (table,), (figure,), runs=(self.teacher(),))

    def plan(self) -> Plan:
        sections = (self.noise_sweep(), self.ensemble_section(), self.dark_knowledge(), self.robustness(),
                    self.paper_scale(), self.demo())
        return Plan(NAME, self.p, self.seeds, sections, tuple(self.claims()),
                    claims_title=f"Paper 3's questions and what the runs of this profile say. {self.caption()}",
                    claims_note=ASSUMPTION + " Paper 3 reports no number we could verify.", statistic="last epoch")


def declare(profile: Profile, seeds: tuple) -> Plan:
    return Paper3(profile, seeds).plan()


EXPERIMENT = Experiment(NAME, "Paper 3: TALD-KD, logit distortion (IPM 2025)", declare,
                        profiles={"paper": PAPER_PROFILE, "mini100": MINI100, "smoke": SMOKE},
                        default_profile="mini100", mini_profiles=("mini100",), demo_section="demo")
main = paper_main(EXPERIMENT, __doc__)

if __name__ == "__main__":
    main()
