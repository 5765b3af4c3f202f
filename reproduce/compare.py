"""The comparison none of the papers has: every logit loss of the three papers, and the strongest
later simple logit method (logit standardization, Sun et al. CVPR 2024), on the same
teacher/student pairs, seeds and recipe.

Pairs: paper 2's (profile mini100: deep -> shallow of the plain CNN family and the cross-family
pair into the residual net; profile paper: ResNet32x4 -> ResNet8x4 and -> ShuffleV1). The runs
paper 2 and paper 3 already trained are the same configs, so they are reused, not retrained.

Methods (each with its paper's own loss weights on the pair's recipe): CE; KD (KL tau 4, alpha
0.9); KL at the tau chosen on validation, alone (paper 1); LMSE (paper 1); DKD; DKL (alpha =
beta = 1) and IKL-KD with global weights off and on (paper 2); TALD at the noise scale chosen on
validation (paper 3, CE + KD); KD and DKD with logit standardization (base temperature 2; KD
with the authors' weights CE 0.1 / KD 9; DKD with its own weights: our choice).

- `search`: KL's tau and TALD's noise scale on a VALIDATION split (1000 training signals held
  out), never on the test set; the choices below are checked by the claims.
- `table`: test top-1 % (last epoch, mean ± std over seeds) and, for each method, the paired
  difference to KD over seeds (mean ± std of the per-seed differences), and a forest figure.
- `--plugin FILE --method NAME[:key=value,...]` (reproduce/plugins.py): your own loss joins the
  table, its interval against KD, the claims and the forest figure, on the same pairs and seeds.
Outputs: results/compare/<profile>/ (`make compare`).
"""
from __future__ import annotations

from dataclasses import replace

from reproduce.decoupled_kl import PAPER_PAIRS, PAPER_PROFILE as P2_PAPER, Paper2
from reproduce import methods, plugins
from reproduce.plan import Best, Claim, Figure, Plan, Runs, Section, Table, cell, kl_hparams
from reproduce.profiles import MINI100, SMOKE, Profile
from reproduce.runner import Experiment, paper_main

NAME = "compare"
KL_TAUS = (1.0, 4.0, 20.0)
TALD_SCALES = (0.0, 0.25, 0.5, 1.0)
# The choices the validation search supports (its table and claims):
KL_TAU, TALD_SCALE = 1.0, 0.25
PAPER_COMPARE = ("resnet32x4->resnet8x4", "resnet32x4->ShuffleV1")
VALIDATION = {"validation": 1000}
MARGIN = 0.5        # points of top-1: the smallest difference we would call a difference (equivalence band)
PAPER_SAYS = {      # what each method's paper says against KD (CIFAR-100 Table 13/14 of paper 2; paper 1; paper 3)
    "CE + KL": "paper 3's baseline (no claim against KD)",
    methods.kl_alone_name(KL_TAU): "paper 1: KL alone with a large tau is a strong KD",
    "LMSE": "paper 1: LMSE at least as good as the best KL",
    "DKD": "paper 2 (mdistiller): DKD above KD on every CIFAR pair",
    "DKL": "paper 2: DKL has KL's gradient (no gain claimed without IKL's changes)",
    "IKL-KD": "paper 2: IKL-KD above KD and DKD",
    "IKL-KD + GI": "paper 2: IKL-KD (with global weights, as described) above KD",
    methods.tald_name(TALD_SCALE): "paper 3: TALD-KD above KD",
    methods.tald_name(TALD_SCALE, kd_weights=True): "paper 3: TALD-KD above KD",
    "KD + LS": "Sun et al. CVPR 2024: KD + LS above KD",
    "DKD + LS": "Sun et al. CVPR 2024: DKD + LS above DKD and KD",
}
ONE_CHANGE_SAYS = {
    methods.tald_name(TALD_SCALE): "paper 3: the noise is what helps",
    methods.tald_name(TALD_SCALE, kd_weights=True): "paper 3: the noise is what helps",
    "DKL": "paper 2, Theorem 1: DKL and KL have the same gradient",
    "IKL-KD + GI": "paper 2: global weights help",
    "DKD + LS": "Sun et al.: LS helps DKD",
}


class Compare:
    def __init__(self, profile: Profile, seeds: tuple, extra: tuple = ()):
        self.p, self.seeds = profile, seeds
        self.p2 = Paper2(profile, seeds)
        self.paper = profile.name == "paper"
        pairs = self.p2.pairs
        if self.paper:
            pairs = [next(p for p in PAPER_PAIRS if p.key == k) for k in PAPER_COMPARE]
        else:
            pairs = [next(p for p in pairs if p.table == t) for t in ("13", "14")]
        self.pairs = pairs
        self.extra = tuple(extra)        # researchers' own methods (--method), reproduce/plugins.py

    def caption(self) -> str:
        return f"Ours: {self.p.dataset} ({self.p.note})."

    def method_names(self) -> list:
        """Every method of the table, each a name of reproduce/methods.py (one objective each)."""
        return ["CE", "KD", "CE + KL", methods.kl_alone_name(KL_TAU), "LMSE", "CE + LMSE", "DKD", "DKL", "IKL-KD",
                "IKL-KD + GI", methods.tald_name(TALD_SCALE), methods.tald_name(TALD_SCALE, kd_weights=True),
                "KD + LS", "DKD + LS", *[m.name for m in self.extra]]

    def run(self, pair, name: str, seed: int):
        p2 = self.p2
        extra = {m.name: m for m in self.extra}
        if name in extra:
            return extra[name].config(p2._runs(pair), pair, seed, p2.teacher(pair, seed))
        return p2._runs(pair).method(name, pair, pair.student, seed, teachers=p2.teacher(pair, seed),
                                     recipe=pair.recipe)

    def demo_method_names(self) -> list:
        """The demo's headline (`make demo`, one seed): paper 2's and paper 3's losses with the baselines
        they are read against (paper 1's LMSE is paper 1's demo), so the demo fits its minutes on 2 cores;
        `table` runs every method."""
        return ["CE", "KD", "CE + KL", "DKD", "IKL-KD", methods.tald_name(TALD_SCALE),
                *[m.name for m in self.extra]]

    def methods(self, pair, seed: int, names=None) -> dict:
        """{method: config} for one pair and seed (`names`: a subset of the table's methods)."""
        return {name: self.run(pair, name, seed) for name in names or self.method_names()}

    # --- the table -------------------------------------------------------------------------
    def table(self, pairs=None, table_name: str = "comparison", section: str = "table", names=None) -> Section:
        rows, forest, cells = [], [], {}
        names = names or self.method_names()
        for pair in pairs or self.pairs:
            per = {s: self.methods(pair, s, names) for s in self.seeds}
            kd = cell({s: per[s]["KD"] for s in self.seeds})
            where = pair.name or pair.key
            for name in names:
                runs = {s: per[s][name] for s in self.seeds}
                c, diff = cell(runs), cell(runs, minus=kd, reduce="interval")
                cells[(pair.key, name)] = c
                rows.append({"pair": where, "method": name, "objective": methods.config_words(runs[self.seeds[0]]),
                             "test top-1 % (last epoch)": c, "mean of last 10": cell(runs, "last10_test_top1"),
                             "minus KD, same seed (95 % CI)": diff if name != "KD" else ""})
                forest.append({"pair": where, "method": name, "diff": diff if name != "KD" else None, "acc": c})
            teachers = cell({s: self.p2.teacher(pair, s) for s in self.seeds})
            cells[(pair.key, "teacher")] = teachers
            rows.append({"pair": where, "method": f"teacher {pair.teacher}", "objective": "CE",
                         "test top-1 % (last epoch)": teachers})
        self._cells = cells if section == "table" else getattr(self, "_cells", cells)
        teacher_note = ("one teacher per pair, as the papers" if not self.p.nested_teachers else
                        "student seed s distils teacher seed s, so every interval holds the teacher's variance")
        t = Table(table_name, f"Every logit loss on the same pairs, seeds and recipe: test top-1 %. {self.caption()}",
                  ("pair", "method", "objective", "test top-1 % (last epoch)", "mean of last 10",
                   "minus KD, same seed (95 % CI)"),
                  tuple(rows), statistic="last epoch",
                  note=f"Teachers: {teacher_note}. Minus KD: per seed, the method minus KD of the same seed; mean and "
                       "its 95 % Student-t interval over seeds. KL's tau and TALD's scale were chosen on the "
                       "validation split (`search`); DKD's and IKL-KD's settings are paper 2's (mini: its validation "
                       "search). TALD's noise law is our assumption (paper 3 publishes none).")
        fig = Figure(table_name, "forest", {"rows": forest})
        runs = tuple({t.run_id: t for p in pairs or self.pairs for t in self.p2.teachers(p)}.values())
        return Section(section, (t,), (fig,), runs=runs)

    # --- search on the validation split ------------------------------------------------------
    def search(self) -> Section:
        """KL's tau (alone) and TALD's noise scale on the validation split, 3 seeds per setting, each
        seed with its own teacher; scale 0 is CE + KL, the base TALD adds noise to."""
        pair, seeds = self.pairs[0], self.seeds[:3]
        if self.p.dataset == "mnist1d_hier":
            val = Runs(Profile(**{**self.p.__dict__, "dataset_options": {**self.p.dataset_options, **VALIDATION}}),
                       self.seeds, NAME)
        else:
            val = self.p2._runs(pair)
        teacher_recipe = self.p2.teacher_recipe or "mdistiller_cifar"

        def teacher(s):
            return val.teacher(pair.teacher, recipe=teacher_recipe, seed=val.teacher_seed_for(s))

        def student(name):
            return {s: val.method(name, pair, pair.student, s, teachers=teacher(s), recipe=pair.recipe) for s in seeds}

        self._search = {
            "tau": {f"tau={tau:g}": student(methods.kl_alone_name(tau)) for tau in KL_TAUS},
            "scale": {f"scale={sc:g}": student(methods.tald_name(sc)) for sc in TALD_SCALES}}
        rows = [{"method": "KL alone", "setting": k, "validation top-1 %": cell(c)}
                for k, c in self._search["tau"].items()]
        rows += [{"method": "TALD (CE + KL on noisy teacher logits)", "setting": k, "validation top-1 %": cell(c)}
                 for k, c in self._search["scale"].items()]
        table = Table("search", f"The comparison's choices on the validation split (1000 training signals held out), "
                      f"pair {pair.name or pair.key}, seeds {', '.join(map(str, seeds))}, each with its own teacher. "
                      f"{self.caption()}", ("method", "setting", "validation top-1 %"), tuple(rows),
                      statistic="last epoch")
        return Section("search", (table,), runs=tuple(teacher(s) for s in seeds))

    def claims(self) -> list:
        out = []
        if hasattr(self, "_search"):
            out += [Claim(f"KL's tau {KL_TAU:g} is the choice on validation (KL alone)", "our search",
                          Best(tuple((k, cell(c)) for k, c in self._search["tau"].items())),
                          name_a=f"tau={KL_TAU:g}", kind="choice"),
                    Claim(f"TALD's scale {TALD_SCALE:g} is the choice on validation", "our search",
                          Best(tuple((k, cell(c)) for k, c in self._search["scale"].items())),
                          name_a=f"scale={TALD_SCALE:g}", kind="choice")]
        c = self._cells
        says = {**PAPER_SAYS, **{m.name: m.says for m in self.extra}}
        for pair in self.pairs:
            where = pair.name or pair.key
            diff = lambda a, b: replace(c[(pair.key, a)], minus=c[(pair.key, b)])  # noqa: E731
            out.append(Claim(f"KD beats CE on {where}", "all three papers: KD above CE", diff("KD", "CE"),
                             name_a="KD − CE", unit=" points", margin=MARGIN))
            family = f"against KD, {where}"
            for name in self.method_names():
                if name in ("CE", "KD"):
                    continue
                out.append(Claim(f"{name} beats KD on {where}", says.get(name, "the method's paper: above KD"),
                                 diff(name, "KD"), name_a=f"{name} − KD", unit=" points", margin=MARGIN, family=family))
            family = f"one change, {where}"
            tald, tald_kd = methods.tald_name(TALD_SCALE), methods.tald_name(TALD_SCALE, kd_weights=True)
            for a, b, what, direction in ((tald, "CE + KL", "noise on the teacher logits (CE 1, KL 1)", ">"),
                                          (tald_kd, "KD", "noise on the teacher logits (KD's 0.1 / 0.9)", ">"),
                                          ("CE + KL", "KD", "the CE weight, 1 against 0.1 (KL weight 1 against 0.9)", ">"),
                                          ("DKL", "CE + KL", "DKL's form (the same gradient) and its 8-epoch warm-up", "="),
                                          ("CE + LMSE", "LMSE", "a CE term beside LMSE", ">"),
                                          ("IKL-KD + GI", "IKL-KD", "class-wise global weights", ">"),
                                          ("DKD + LS", "DKD", "logit standardization on DKD (authors' weights x9)", ">")):
                verb = "changes nothing beyond the margin" if direction == "=" else f"beats {b}"
                out.append(Claim(f"One change, {what}: {a} {verb} on {where}", ONE_CHANGE_SAYS.get(a, "our question"),
                                 diff(a, b), name_a=f"{a} − {b}", unit=" points", margin=MARGIN, family=family,
                                 direction=direction))
        return out

    def plan(self) -> Plan:
        sections = (self.search(), self.table(), self.table(self.pairs[:1], "headline", "demo",
                                                                      self.demo_method_names()))
        return Plan(NAME, self.p, self.seeds, sections, tuple(self.claims()),
                    claims_title=f"Each method against KD on the same pairs. {self.caption()}",
                    claims_note="Statistic: last epoch; every method's own published loss weights.",
                    statistic="last epoch")


def declare(profile: Profile, seeds: tuple, plugin=(), method=()) -> Plan:
    """The comparison's plan; `plugin` / `method`: the --plugin files and --method strings."""
    extra = plugins.extra_methods(plugin, method, Compare(profile, seeds).method_names()) if plugin or method else ()
    return Compare(profile, seeds, extra).plan()


# where the comparison decides claims: 10 seeds at mini scale (paper 2's headline pairs reuse these runs)
MINI100_10 = replace(MINI100, seeds=tuple(range(10)))
EXPERIMENT = Experiment(NAME, "The comparison: every logit loss on identical pairs", declare,
                        profiles={"paper": P2_PAPER, "mini100": MINI100_10, "smoke": SMOKE},
                        default_profile="mini100", mini_profiles=("mini100",), demo_section="demo",
                        extra_args=plugins.add_args)
main = paper_main(EXPERIMENT, __doc__)

if __name__ == "__main__":
    main()
