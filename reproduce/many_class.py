"""The many-class mini setting (profile `mini100`): how its recipes were chosen, what it can show.

Data: `mnist1d_hier` (data/hier.py), 100 fine classes in 20 coarse x 5 fine, 8000 training
and 6000 test signals; models: models/mini100.py (teacher cnn1d_t100, middle cnn1d_m100,
students cnn1d_s100_shallow / cnn1d_s100_thin (plain CNN family) and res1d_s100 (residual)).

- `search`: learning rates and schedule lengths chosen on a VALIDATION split (1000 signals
  carved from the training set, stratified; teachers of the search see only the other 7000),
  never on the test set: the teacher's lr, each student's lr at the base schedule, and whether
  a schedule twice as long changes the ordering of CE, KD, KL tau 20 and LMSE. The choices it
  supports are declared below (TEACHER_LR, STUDENT_LR, EPOCHS) and checked by its claims.
- `acceptance`: the setting's requirements on the test set, the profile's seeds (student seed s
  distils teacher seed s): teacher >= CE student + 5, KD (tau 4) beats CE (paired 95 % interval),
  a middle model between teacher and student (2 points each side), the hierarchy visible in the
  teachers (probability per sibling class >= 5x per non-sibling class at tau 1).
- `hierarchy`: the teacher's probabilities per coarse and fine class (a table and a heat map
  ordered by coarse class).

Outputs: results/many_class/mini100/. `python -m reproduce.many_class all` (make many-class).
"""
from __future__ import annotations

import functools
from dataclasses import replace

from data.hier import coarse_of_fine
from losses import loss_label
from reproduce.decoupled_kl import Paper2
from reproduce.plan import Best, Claim, Figure, PaperNumber as P, Plan, Runs, Section, Table, cell, kl_hparams
from reproduce.profiles import MINI100, SMOKE, Profile
from reproduce.runner import Experiment, paper_main

NAME = "many_class"
TEACHER, MIDDLE = "cnn1d_t100", "cnn1d_m100"
STUDENTS = ("cnn1d_s100_shallow", "cnn1d_s100_thin", "res1d_s100")
MAIN_STUDENT = "cnn1d_s100_shallow"
VALIDATION = {"validation": 1000}      # signals carved from the 8000 training ones (stratified, seed 0)
LRS = (3e-3, 1e-2, 3e-2)
# The choices the search supports (see its table and claims):
TEACHER_LR, STUDENT_LR, EPOCHS = 3e-3, 1e-2, 100
WIDTHS = ("cnn1d_s100_thin", "cnn1d_s100_shallow", "cnn1d_s100_wide")    # 24, 64, 128 pooled features
STATISTIC = "final epoch"


def losses_of_the_ordering(runs: Runs, teacher, seed: int, model: str, epochs: int) -> dict:
    """CE, KD (tau 4, alpha 0.9), KL tau 20, LMSE students of one model at one schedule length."""
    over = {"epochs": epochs}
    return {"CE": runs.student(model, "ce", seed, overrides=over),
            "KD": runs.student(model, "kl", seed, teachers=teacher, hparams=kl_hparams(4.0, 0.9), overrides=over),
            "KL tau=20": runs.student(model, "kl", seed, teachers=teacher, hparams=kl_hparams(20.0), overrides=over),
            "LMSE": runs.student(model, "mse", seed, teachers=teacher, overrides=over)}


class ManyClass:
    def __init__(self, profile: Profile, seeds: tuple):
        self.p, self.seeds = profile, seeds
        self.runs = Runs(profile, seeds, NAME)
        small = profile.name == "smoke"
        self.teacher_model, self.middle = ("cnn1d_teacher", "cnn1d_medium") if small else (TEACHER, MIDDLE)
        self.students = ("cnn1d_student",) if small else STUDENTS
        self.main_student = self.students[0]
        self.val = Runs(Profile(**{**profile.__dict__, "dataset_options": {**profile.dataset_options, **VALIDATION}}),
                        seeds, NAME) if not small else Runs(profile, seeds, NAME)
        self.epochs = None if small else EPOCHS

    def _over(self, **kw) -> dict | None:
        return None if self.p.name == "smoke" else kw

    def caption(self) -> str:
        return f"Ours: {self.p.dataset} ({self.p.note})."

    # --- search (validation split, seed 0) ---------------------------------------------
    def search(self) -> Section:
        s = self.seeds[0]
        teachers = {lr: self.val.teacher(self.teacher_model, overrides=self._over(lr=lr)) for lr in LRS}
        long_teacher = self.val.teacher(self.teacher_model, overrides=self._over(lr=TEACHER_LR, epochs=80))
        rows = [{"model": f"teacher {self.teacher_model}", "lr": f"{lr:g}", "epochs": str(c.recipe["epochs"]),
                 "validation top-1 %": cell([c]), "gain over the last fifth": cell([c], "last_fifth_gain")}
                for lr, c in [*teachers.items(), (TEACHER_LR, long_teacher)]]
        grid = {}
        for model in (self.middle, *self.students):
            for lr in LRS:
                c = self.val.student(model, "ce", s, overrides=self._over(lr=lr))
                grid[(model, lr)] = c
                rows.append({"model": f"{model} (CE)", "lr": f"{lr:g}", "epochs": str(c.recipe["epochs"]),
                             "validation top-1 %": cell([c]), "gain over the last fifth": cell([c], "last_fifth_gain")})
        lr_table = Table("search_lr", "Learning rates on the validation split (1000 training signals held out; seed 0). "
                         + self.caption(), ("model", "lr", "epochs", "validation top-1 %", "gain over the last fifth"),
                         tuple(rows), statistic=STATISTIC,
                         note="Adam, cosine to 0 per step, batch 128. Gain over the last fifth: validation top-1 at the "
                              "last epoch minus at 80 % of training (about 0 once a schedule has converged).")
        teacher = teachers[TEACHER_LR]
        base = self.epochs or 2
        orders = {e: losses_of_the_ordering(self.val, teacher, s, self.main_student, e) for e in (base, 2 * base)}
        order_rows = [{"loss": name, **{f"{e} epochs": cell([orders[e][name]]) for e in orders},
                       **{f"gain over the last fifth ({e} epochs)": cell([orders[e][name]], "last_fifth_gain")
                          for e in orders}} for name in orders[base]]
        order_table = Table("search_schedule", f"Schedule length: {self.main_student} students at {base} and {2 * base} "
                            f"epochs (lr {STUDENT_LR:g}), teacher {self.teacher_model} (lr {TEACHER_LR:g}), validation "
                            "split, seed 0. " + self.caption(),
                            ("loss", *[f"{e} epochs" for e in orders], *[f"gain over the last fifth ({e} epochs)" for e in orders]),
                            tuple(order_rows), statistic=STATISTIC,
                            note="KD: KL tau 4, alpha 0.9 (0.1 CE); KL tau 20 and LMSE: no CE term, as in paper 1.")
        width_rows = []
        for model in (WIDTHS if self.p.name != "smoke" else self.students):
            runs = losses_of_the_ordering(self.val, teacher, s, model, base)
            width_rows.append({"student": model, **{name: cell([c]) for name, c in runs.items()}})
        width_table = Table("search_width", f"Logit matching against the student's penultimate width: CE, KD, KL tau 20 "
                            f"and LMSE students of three plain CNNs with 24, 64 and 128 pooled features, {base} epochs, "
                            "validation split, seed 0. " + self.caption(),
                            ("student", "CE", "KD", "KL tau=20", "LMSE"), tuple(width_rows), statistic=STATISTIC,
                            note="Why it is here: with 100 classes, matching every logit needs a penultimate layer wide "
                                 "enough to express them; the first students (16-32 pooled features) fell 10-14 points "
                                 "below CE with LMSE.")
        self._search = (teachers, grid, orders, base)
        return Section("search", (lr_table, order_table, width_table))

    def search_claims(self) -> list:
        teachers, grid, orders, base = self._search
        claims = [Claim(f"The teacher's lr {TEACHER_LR:g} is the best of {', '.join(f'{x:g}' for x in LRS)} on validation",
                        "our search", Best(tuple((f"{lr:g}", cell([c])) for lr, c in teachers.items())),
                        name_a=f"{TEACHER_LR:g}", kind="choice")]
        for model in (self.middle, *self.students):
            claims.append(Claim(f"{model}: lr {STUDENT_LR:g} is the best on validation", "our search",
                                Best(tuple((f"{lr:g}", cell([grid[(model, lr)]])) for lr in LRS)),
                                name_a=f"{STUDENT_LR:g}", kind="choice"))
        first, second = ([(n, cell([c])) for n, c in orders[e].items()] for e in (base, 2 * base))
        claims.append(Claim(f"A schedule twice as long ({2 * base} epochs) keeps the ordering of CE, KD, KL tau 20 "
                            "and LMSE", "our requirement", kind="order", name_a=f"{base} epochs",
                            name_b=f"{2 * base} epochs", data={"first": first, "second": second}))
        claims.append(Claim(f"The CE student has converged at {base} epochs: gain over the last fifth below 1 point",
                            "our requirement", cell([orders[base]["CE"]], "last_fifth_gain"), name_a="gain",
                            kind="threshold", op="<=", bound=1.0, unit=" points"))
        return claims

    # --- acceptance (test set, every seed) ---------------------------------------------------
    def acceptance(self) -> Section:
        # Teachers nested in seeds: student seed s distils teacher seed s, so the paired intervals
        # of the requirements below hold the teacher's variance too.
        teachers = self.runs.teachers_by_seed(self.teacher_model)
        rows, self._cells = [], {}
        self._cells["teacher"] = cell(teachers)
        rows.append({"model": f"teacher {self.teacher_model}", "loss": "CE", "test top-1 %": self._cells["teacher"],
                     "train time s": cell(teachers, "train_time_s", 0)})
        for model in (self.middle, *self.students):
            for loss, hp in (("ce", None), ("kl", kl_hparams(4.0, 0.9))):
                runs = self.runs.per_seed(model, loss, teachers=() if loss == "ce" else teachers, hparams=hp)
                self._cells[(model, loss)] = cell(runs)
                rows.append({"model": model, "loss": loss_label(loss, hp) if loss != "kl" else "KD: KL tau=4 alpha=0.9",
                             "test top-1 %": cell(runs), "train time s": cell(runs, "train_time_s", 0)})
        table = Table("acceptance", f"The many-class mini setting's requirements, test set. {self.caption()}",
                      ("model", "loss", "test top-1 %", "train time s"), tuple(rows), statistic=STATISTIC,
                      note="Student seed s distils teacher seed s; train time: the training loop's seconds of the run "
                           "(its share of its group's loop when trained in a group; evaluation excluded).")
        self._teachers = teachers
        return Section("acceptance", (table,), runs=tuple(teachers.values()))

    def acceptance_claims(self) -> list:
        c, t = self._cells, self._teachers
        s = self.main_student
        hierarchy = {"coarse_of_fine": list(coarse_of_fine()) if self.p.name != "smoke" else [0, 0, 1, 1],
                     "tau": 1.0}
        return [
            Claim("The teacher beats the CE student by more than 5 points", "requirement",
                  replace(c["teacher"], minus=c[(s, "ce")]), name_a=f"teacher − {s} CE", kind="threshold",
                  op=">=", bound=5.0, unit=" points"),
            Claim("KD (tau 4) beats the CE student", "requirement", c[(s, "kl")], c[(s, "ce")], "KD", "CE"),
            Claim(f"The middle model {self.middle} is at least 2 points below the teacher", "requirement",
                  replace(c["teacher"], minus=c[(self.middle, "ce")]), name_a="teacher − middle CE",
                  kind="threshold", op=">=", bound=2.0, unit=" points"),
            Claim(f"The middle model is at least 2 points above the student {s}", "requirement",
                  replace(c[(self.middle, "ce")], minus=c[(s, "ce")]), name_a=f"middle CE − {s} CE",
                  kind="threshold", op=">=", bound=2.0, unit=" points"),
            Claim("The hierarchy is visible in the teacher: probability per sibling class >= 5x per non-sibling class "
                  "at tau 1", "requirement", cell(t, "sibling_ratio", 1, args=hierarchy), name_a="ratio",
                  kind="threshold", op=">=", bound=5.0, unit="x"),
        ]

    # --- hierarchy -----------------------------------------------------------------------
    def hierarchy(self) -> Section:
        t = self.runs.teacher(self.teacher_model)
        cof = list(coarse_of_fine()) if self.p.name != "smoke" else None
        rows = []
        for tau in (1.0, 4.0):
            args = {"coarse_of_fine": cof or [0, 0, 1, 1], "tau": tau}
            rows.append({"tau": f"{tau:g}",
                         **{col: cell([t], "sibling_mass:" + key, 3, args=args)
                            for col, key in (("true class", "true"), ("4 siblings together", "siblings"),
                                             ("95 others together", "others"))},
                         "per sibling / per other": cell([t], "sibling_ratio", 1, args=args)})
        table = Table("hierarchy", f"Teacher {self.teacher_model}: test-set probability on the true class, its 4 "
                      "siblings (same coarse class) and the 95 other classes. " + self.caption(),
                      ("tau", "true class", "4 siblings together", "95 others together", "per sibling / per other"),
                      tuple(rows), statistic="the teacher run (1 run)")
        figure = Figure("hierarchy", "hierarchy", {"teacher": t, "coarse_of_fine": cof or [0, 0, 1, 1]})
        return Section("hierarchy", (table,), (figure,), runs=(t,))

    # --- the papers' regime ------------------------------------------------------------------
    def regime(self) -> Section:
        """Every mini100 pair the papers use beside paper 2's CIFAR-100 Table 13 pairs: sizes, the
        teacher's lead, KD's gain over CE (95 % interval), how the teacher fits its training set,
        and whether the students were still improving at the end."""
        p2 = Paper2(self.p, self.seeds)
        rows = []
        for pair in p2.pairs:
            runs = {m: p2.per_seed(pair, m) for m in ("teacher", "CE", "KD")}
            c = {m: cell(r) for m, r in runs.items()}
            rows.append({
                "pair": f"{pair.teacher} -> {pair.student} ({pair.name or pair.table})", "data": self.p.dataset,
                **sizes(pair.teacher, pair.student, in_channels=1, options=self.p.model_options),
                "teacher test top-1": c["teacher"], "CE student": c["CE"], "KD": c["KD"],
                "teacher − CE student": replace(c["teacher"], minus=c["CE"], reduce="interval"),
                "KD − CE (95 % CI)": replace(c["KD"], minus=c["CE"], reduce="interval"),
                "teacher train top-1 (no aug.)": cell(runs["teacher"], "fit:train_top1"),
                "teacher p(true class), tau 1": cell(runs["teacher"], "fit:true_class_prob", 3),
                "CE gain over the last tenth": cell(runs["CE"], "last_tenth_gain"),
                "KD gain over the last tenth": cell(runs["KD"], "last_tenth_gain")})
        for key in CIFAR_PAIRS:
            t, st = key.split("->")
            k = f"decoupled_kl:t13.{key}"
            rows.append({"pair": f"{key} (paper 2 Table 13)", "data": "CIFAR-100",
                         **sizes(t, st, in_channels=3),
                         "teacher test top-1": P(f"{k}.teacher"), "CE student": P(f"{k}.student"), "KD": P(f"{k}.kd"),
                         "teacher − CE student": P(f"{k}.teacher", minus=f"{k}.student"),
                         "KD − CE (95 % CI)": P(f"{k}.kd", minus=f"{k}.student")})
        table = Table("regime", "The papers' regime: each mini100 pair the papers use beside paper 2's CIFAR-100 "
                      "Table 13 pairs (mdistiller's numbers, best epoch, mean of 3 runs). " + self.caption(),
                      REGIME_COLUMNS, tuple(rows), statistic="last epoch (ours), best epoch (CIFAR rows)",
                      note="Ours: student seed s distils teacher seed s. Teacher fit: top-1 and mean true-class "
                           "probability at tau 1 on the un-augmented training set (engine/fit.py). Gain over the last "
                           "tenth: test top-1 at the last epoch minus at 90 % of training (students train 100 epochs: "
                           "'stopped improving' reads as a gain within ± 0.5 points). Dropped pairs (17.4k middle "
                           "teacher): see results/many_class/README.md.")
        teachers = tuple(t for pair in p2.pairs for t in p2.teachers(pair))
        return Section("regime", (table,), runs=teachers, claims=False)

    def plan(self) -> Plan:
        sections = [self.search(), self.acceptance(), self.hierarchy()]
        sections.append(self.regime())
        return Plan(NAME, self.p, self.seeds, tuple(sections), tuple(self.search_claims() + self.acceptance_claims()),
                    claims_title=f"The many-class mini setting: its choices and requirements. {self.caption()}",
                    claims_note="Search claims on the validation split (seed 0), acceptance on the test set.",
                    statistic=STATISTIC)


@functools.lru_cache(maxsize=None)
def param_count(model: str, num_classes: int = 100, in_channels: int = 3, options: str = "{}") -> int:
    """Parameters of a model of the zoo (a declaration builds it once to count them; no run needed)."""
    import json

    from models import build_model

    return sum(p.numel() for p in build_model(model, num_classes=num_classes, in_channels=in_channels,
                                              **json.loads(options)).parameters())


def sizes(teacher: str, student: str, in_channels: int, options: dict | None = None) -> dict:
    import json

    opts = options or {}
    t, s = (param_count(m, 100 if in_channels == 3 else 100, in_channels, json.dumps(opts.get(m, {}), sort_keys=True))
            for m in (teacher, student))
    return {"teacher params": f"{t:,}", "student params": f"{s:,}", "params ratio": f"{t / s:.1f}x"}


CIFAR_PAIRS = ("resnet56->resnet20", "resnet110->resnet32", "resnet32x4->resnet8x4", "wrn_40_2->wrn_16_2",
               "wrn_40_2->wrn_40_1", "vgg13->vgg8")
REGIME_COLUMNS = ("pair", "data", "teacher params", "student params", "params ratio", "teacher test top-1", "CE student", "KD",
                  "teacher − CE student", "KD − CE (95 % CI)", "teacher train top-1 (no aug.)",
                  "teacher p(true class), tau 1", "CE gain over the last tenth", "KD gain over the last tenth")


def declare(profile: Profile, seeds: tuple) -> Plan:
    return ManyClass(profile, seeds).plan()


EXPERIMENT = Experiment(NAME, "The many-class mini setting (mini100): search, acceptance, the papers' regime", declare,
                        profiles={"mini100": MINI100, "smoke": SMOKE}, default_profile="mini100",
                        mini_profiles=())     # a one-off calibration: `make many-class`, not part of `make mini`
main = paper_main(EXPERIMENT, __doc__)

if __name__ == "__main__":
    main()
