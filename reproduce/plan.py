"""A paper's experiment as plain data: which runs make which table cell, figure and claim.

A paper script declares, without any I/O, one `Plan` per profile:

    plan = Plan(paper="kl_vs_mse", profile=..., seeds=(0, 1, 2), sections=(Section("tau-sweep", tables=...),),
                claims=(Claim(...),))

- `Section`: one subcommand and make target (`make kl-vs-mse.tau-sweep`): its tables, figures
  and any extra runs (teachers) it needs.
- `Table`: rows x columns; a cell is a `Cell` (our measurement: a set of runs, one per seed,
  a metric and how many digits), a `PaperNumber` (a key of the paper's numbers file,
  docs/numbers/<paper>.csv, or a qualitative statement) or plain text. `kind` other than
  "cells" names a table the paper's analysis module computes from the runs in `data`.
- `Figure`: a plot drawn by the paper's analysis module (`kind`) from the cells in `data`.
- `Claim`: "cell A beats cell B" (or a named check of the analysis module), the paper's
  statement with `{key}` placeholders for its numbers.

The shared runner (reproduce/runner.py) trains what is missing and writes one manifest per
table and figure (run ids, metrics, the paper's numbers and their source) under
results/<paper>/<profile>/manifest/; `analysis/` renders those manifests and never imports
this package.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine import LabelNoise, RunConfig, make_config, teacher_config
from reproduce import methods
from reproduce.profiles import Profile

CLEAN = LabelNoise()
INF = float("inf")


# --- what a table holds ----------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """Our measurement: `metric` over `runs` (one per seed; a run shared by every seed, such as
    a teacher, counts once), mean ± std. `metric` is a summary column of analysis/runs.py
    (final_*, last10_*, best_*) or a metric of analysis/metrics.py computed from saved outputs
    (e.g. "cluster_spread", "agreement:logit_dist" against the run `against`: one run for every
    seed, or {seed: run}, each run against the run of its own seed, e.g. its seed's teacher)."""
    runs: tuple
    metric: str = "final_test_top1"
    digits: int = 2
    against: RunConfig | dict | None = None
    reduce: str = "stat"          # "stat": mean ± std over runs; "first": the first run's value, as text;
                                  # "interval": with `minus`, the paired difference and its 95 % interval
    args: dict = field(default_factory=dict)   # JSON-able arguments of a derived metric (e.g. tau)
    minus: "Cell | None" = None   # paired difference: this cell's value minus `minus`'s, seed by seed

    def run_ids(self) -> list[str]:
        return list(dict.fromkeys(c.run_id for c in self.runs))

    def against_of(self, run: RunConfig) -> RunConfig | None:
        """The run `run`'s metric is measured against (per seed: the run of `run`'s seed)."""
        return self.against.get(run.seed) if isinstance(self.against, dict) else self.against


def cell(runs, metric: str = "final_test_top1", digits: int = 2, **kw) -> Cell:
    """A Cell from a {seed: config} dict or a list of configs. `against` as {seed: config} that
    names one run for every seed is that run."""
    runs = runs.values() if isinstance(runs, dict) else runs
    against = kw.get("against")
    if isinstance(against, dict) and len({c.run_id for c in against.values()}) == 1:
        kw["against"] = next(iter(against.values()))
    return Cell(tuple({c.run_id: c for c in runs}.values()), metric, digits, **kw)


@dataclass(frozen=True)
class PaperNumber:
    """The paper's number for a cell: a key of docs/numbers/<paper>.csv, or no number (`text`
    for a qualitative statement, '–' when empty)."""
    key: str | None = None        # "<other paper>:<key>" reads another paper's numbers file
    text: str = ""
    unverified: bool = False      # only for text; a number's status comes from the numbers file
    minus: str | None = None      # a second key: the cell is key's number minus this one's


NOT_REPORTED = PaperNumber()


@dataclass(frozen=True)
class Table:
    name: str                     # file stem: <name>.md / <name>.csv
    title: str                    # what the table shows (caption head)
    columns: tuple = ()
    rows: tuple = ()              # dicts column -> Cell | PaperNumber | str
    note: str = ""                # caption tail
    statistic: str = "final epoch"
    kind: str = "cells"           # or a table computed by analysis/<paper>.py from `data`
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Figure:
    name: str                     # file stem: <name>.png
    kind: str                     # a figure function of analysis/<paper>.py
    data: dict = field(default_factory=dict)   # Cells and plain values, in the figure's own shape


@dataclass(frozen=True)
class Best:
    """The best of several cells, picked when rendering (highest mean among those present)."""
    options: tuple                # ((name, Cell), ...)


@dataclass(frozen=True)
class Claim:
    """One claim and how it is decided (analysis/evidence.py, analysis/render.py). Kinds:

    - "contrast": A against B over seed-matched runs (`b` None: `a` is itself a paired difference),
      `direction` ">" (A beats B), "<" or "=" (no difference: needs `margin`); `margin` is the
      smallest difference that would matter (the equivalence band +- margin); claims sharing a
      `family` (many methods against one baseline) are Holm-corrected together.
    - "check": an exact identity computed by the paper's analysis module (`data`).
    - "threshold": a quantity against a fixed `bound` (`op` ">=" or "<="), over its n runs.
    - "choice": a validation search (`a` a `Best` of the grid in order, `name_a` the declared setting).
    - "order": two lists of cells (`data` first / second) ranked in the same order?
    - "not run": cannot run at this profile (`reason`)."""
    text: str                     # may hold {best}: the name of the option a `Best` picked
    paper: str                    # the paper's statement; {key} placeholders take numbers
    a: Cell | Best | None = None
    b: Cell | Best | None = None
    name_a: str = ""
    name_b: str = ""
    unit: str = ""
    kind: str = "contrast"
    data: dict = field(default_factory=dict)
    reason: str = ""              # for "not run"
    direction: str = ">"          # contrast
    margin: float = 0.0           # contrast: equivalence band, in the metric's unit
    family: str = ""              # contrast: Holm family
    op: str = ">="                # threshold
    bound: float = 0.0            # threshold


@dataclass(frozen=True)
class Section:
    """A subcommand and make target: its tables and figures, and extra runs (teachers)."""
    name: str
    tables: tuple = ()
    figures: tuple = ()
    runs: tuple = ()
    claims: bool = True           # re-render the paper's claims with it (no: a table its claims do not use)


@dataclass(frozen=True)
class Plan:
    paper: str                    # results/<paper>/<profile>/, docs/numbers/<paper>.csv, analysis/<paper>.py
    profile: Profile
    seeds: tuple
    sections: tuple
    claims: tuple = ()
    claims_title: str = "Claims."
    claims_note: str = ""
    statistic: str = "final epoch"   # of the claims table

    def section(self, name: str) -> Section:
        for s in self.sections:
            if s.name == name:
                return s
        raise KeyError(name)


def configs_of(section: Section) -> list[RunConfig]:
    """Every run a section needs: its extra runs and those of every cell, figure and table."""
    out = list(section.runs)
    for item in (*section.tables, *section.figures):
        out += list(runs_in(item.rows if isinstance(item, Table) else ()))
        out += list(runs_in(item.data))
    return out


def runs_in(x):
    """The RunConfigs inside a nested structure of cells, dicts, lists and tuples."""
    if isinstance(x, RunConfig):
        yield x
    elif isinstance(x, Cell):
        yield from x.runs
        if isinstance(x.against, dict):
            yield from x.against.values()
        elif x.against is not None:
            yield x.against
        if x.minus is not None:
            yield from runs_in(x.minus)
    elif isinstance(x, Best):
        for _, c in x.options:
            yield from runs_in(c)
    elif isinstance(x, dict):
        for v in x.values():
            yield from runs_in(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from runs_in(v)


# --- making run configs for a profile --------------------------------------------------
@dataclass(frozen=True)
class Runs:
    """Run configs of one paper at one profile: teachers (CE runs of the profile's teacher recipe)
    and students. With nested teachers (every mini profile) student seed s distils teacher seed s;
    otherwise (paper profiles, as the papers do) every student distils the teacher of the profile's
    first seed."""
    profile: Profile
    seeds: tuple
    tag: str                      # experiment tag written into config.json

    @property
    def teacher_seed(self) -> int:
        return self.profile.seeds[0]

    def teacher_seed_for(self, seed: int) -> int:
        """The seed of the teacher that student seed `seed` distils."""
        return seed if self.profile.nested_teachers else self.teacher_seed

    def _options(self, model: str) -> dict | None:
        return dict(self.profile.model_options.get(model, {})) or None

    def teacher(self, model: str, noise: LabelNoise = CLEAN, seed: int | None = None,
                recipe: str | None = None, overrides: dict | None = None) -> RunConfig:
        p = self.profile
        return teacher_config(p.dataset, model, seed=self.teacher_seed if seed is None else seed,
                              recipe=recipe or p.teacher_recipe,
                              recipe_overrides={**p.recipe_overrides, **(overrides or {})} or None,
                              dataset_options=p.dataset_options, model_options=self._options(model),
                              label_noise=noise)

    def student(self, model: str, loss: str, seed: int, *, teachers=(), hparams=None, noise: LabelNoise = CLEAN,
                recipe: str | None = None, overrides: dict | None = None, ensemble: str = "mean",
                method: str = "") -> RunConfig:
        """A student run; `ce` takes no teacher. Hyperparameters at their defaults should be left
        out of `hparams` so that equal runs of other scripts get the same run id."""
        p = self.profile
        teachers = (teachers,) if isinstance(teachers, RunConfig) else tuple(teachers)
        return make_config(self.tag, p.dataset, model, loss=loss, loss_hparams=hparams or {},
                           teachers=[t.run_id for t in teachers], ensemble=ensemble,
                           recipe=recipe or p.student_recipe,
                           recipe_overrides={**p.recipe_overrides, **(overrides or {})} or None, seed=seed,
                           dataset_options=p.dataset_options, model_options=self._options(model), label_noise=noise,
                           method=method)

    def method(self, name: str, pair, model: str, seed: int, *, teachers=(), recipe: str | None = None,
               overrides: dict | None = None, noise: LabelNoise = CLEAN, ensemble: str = "mean") -> RunConfig:
        """The run of method `name` (reproduce/methods.py: its whole objective, the CE weight and
        warm-up included) for `pair`'s settings; `overrides` may only touch the recipe, not the objective."""
        obj = methods.method(name, pair)
        clash = set(overrides or {}) & set(obj.overrides())
        if clash:
            raise ValueError(f"method '{name}': {', '.join(sorted(clash))} belong to the method, not the recipe")
        if obj.loss == "ce":
            return self.student(model, "ce", seed, recipe=recipe, overrides=overrides, noise=noise, method=name)
        return self.student(model, obj.loss, seed, teachers=teachers, hparams=obj.hparams, noise=noise, recipe=recipe,
                            overrides={**(overrides or {}), **obj.overrides()}, ensemble=ensemble, method=name)

    def teachers_by_seed(self, model: str, **kw) -> dict:
        """{student seed: the teacher run it distils} over the plan's seeds (nested or the one teacher)."""
        return {s: self.teacher(model, seed=self.teacher_seed_for(s), **kw) for s in self.seeds}

    def per_seed(self, model: str, loss: str, teachers=(), **kw) -> dict:
        """{seed: student config} over the plan's seeds; `teachers` as {seed: teacher} gives each seed its own."""
        def of(s):
            return teachers[s] if isinstance(teachers, dict) else teachers
        return {s: self.student(model, loss, s, teachers=of(s), **kw) for s in self.seeds}


def kl_hparams(tau: float, alpha: float = 1.0) -> dict:
    """`kl` hyperparameters with alpha left out at its default (1), as every paper script writes them."""
    return {"tau": float(tau)} | ({} if alpha == 1.0 else {"alpha": float(alpha)})


def fmt_tau(tau) -> str:
    return "inf" if math.isinf(tau) else f"{tau:g}"
