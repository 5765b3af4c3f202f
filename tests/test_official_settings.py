"""The paper profile's planned runs equal the official configurations, field by field.

reproduce/official_settings.csv holds one row per (official file, field): the paper plan, pair and
method as this repository names them, the field of a planned RunConfig, the official value and its
source (repository, path, commit, official field name). Each row must match at least one planned run
of the paper profile, and every run it matches must hold the official value.

Fields: a dotted path into RunConfig (`recipe.lr`, `loss_hparams.tau` with the loss's defaults filled
in, `model`, `dataset`, `seed`), `teacher` (the teacher run's model) and the objective's total weights,
which the official trainers name and this repository splits between recipe and loss:
`objective.ce_weight` (CE on the labels: the recipe's ce_weight plus the (1 - alpha) share a `kl` or
`mse` loss, also as the base of `ls`, adds itself) and `objective.kd_weight` (the weight of the
distillation term: the recipe's kd_weight times that alpha).
"""
import csv
import json
import math
from functools import lru_cache
from pathlib import Path

import pytest

from losses import defaults as loss_defaults
from reproduce import methods
from reproduce.decoupled_kl import PAPER_PAIRS
from reproduce.papers import experiments
from reproduce.plan import configs_of, runs_in

CSV = Path(__file__).resolve().parents[1] / "reproduce" / "official_settings.csv"
ROWS = list(csv.DictReader(CSV.open(newline="")))
COLUMNS = ["paper", "pair", "method", "field", "official_value", "source_repo", "source_path", "source_commit",
           "official_field"]
# (paper, pair, method, field) -> why our plan differs from the official config (xfail, strict)
MISMATCHES: dict = {}


def key(row) -> tuple:
    return row["paper"], row["pair"], row["method"], row["field"]


# --- the planned runs -------------------------------------------------------------------------
@lru_cache(maxsize=None)
def planned(paper: str) -> dict:
    """{(run id, method tag): config} of every run the paper profile plans (sections and claims)."""
    plan = next(e for e in experiments() if e.name == paper).plan("paper")
    configs = [c for s in plan.sections for c in configs_of(s)]
    configs += [r for c in plan.claims for r in runs_in([c.a, c.b, c.data])]
    return {(c.run_id, c.method): c for c in configs}


def method_of(c) -> str:
    """The method's name; runs planned without one (paper 1's) by their objective."""
    if c.method:
        return c.method
    names = ["CE", "LMSE"] + ([methods.kl_alone_name(c.loss_hparams["tau"])] if c.loss == "kl" else [])
    words = methods.config_words(c)
    return next((n for n in names if methods.method(n, None).words() == words), "")


@lru_cache(maxsize=None)
def index(paper: str) -> dict:
    """(teacher model | None | "teacher", student model, method) -> configs, clean labels only."""
    runs = {rid: c for (rid, _), c in planned(paper).items()}
    out = {}
    for c in planned(paper).values():
        if c.label_noise.tag != "clean":
            continue
        if c.is_teacher and not c.method:                  # a CE run nobody named: a teacher (or paper 1's CE)
            out.setdefault(("teacher", c.model, "teacher"), []).append(c)
        teachers = {runs[t].model for t in c.teachers}
        assert len(teachers) <= 1, c.run_id
        out.setdefault((next(iter(teachers), None), c.model, method_of(c)), []).append(c)
    return out


def runs_for(row) -> list:
    teacher, student = row["pair"].split("->")
    idx = index(row["paper"])
    if row["method"] == "teacher":
        return idx.get(("teacher", teacher, "teacher"), [])
    return idx.get((teacher, student, row["method"]), []) + idx.get((None, student, row["method"]), [])


def ce_share(c) -> float:
    """The CE share (1 - alpha) that a `kl` or `mse` loss (also as the base of `ls`) adds itself."""
    hp = {**loss_defaults(c.loss), **c.loss_hparams}
    base = hp.get("base", c.loss) if c.loss == "ls" else c.loss
    return 1.0 - hp.get("alpha", 1.0) if base in ("kl", "mse") else 0.0


def value(c, field: str, paper: str):
    head, _, rest = field.partition(".")
    if field == "teacher":
        return next(t.model for (rid, _), t in planned(paper).items() if rid == c.teachers[0])
    if head == "recipe":
        return c.recipe[rest]
    if head == "loss_hparams":
        return {**loss_defaults(c.loss), **c.loss_hparams}[rest]
    if field == "objective.ce_weight":
        return c.recipe["ce_weight"] + c.recipe["kd_weight"] * ce_share(c)
    if field == "objective.kd_weight":
        return c.recipe["kd_weight"] * (1.0 - ce_share(c))
    return getattr(c, field)


# --- comparing -----------------------------------------------------------------------------------
def parse(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def same(ours, official) -> bool:
    if isinstance(official, bool) or isinstance(ours, bool):
        return isinstance(ours, bool) and isinstance(official, bool) and ours == official
    if isinstance(official, (int, float)):
        return isinstance(ours, (int, float)) and math.isclose(ours, official, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(official, list):
        return isinstance(ours, (list, tuple)) and len(ours) == len(official) and all(
            same(a, b) for a, b in zip(ours, official))
    # names: the official repositories write SGD / ResNet34 / wrn-28-4 for our sgd / resnet34 / wrn_28_4
    return isinstance(ours, str) and ours.lower().replace("-", "_") == str(official).lower().replace("-", "_")


def _param(row):
    marks = [pytest.mark.xfail(strict=True, reason=MISMATCHES[key(row)])] if key(row) in MISMATCHES else []
    return pytest.param(row, marks=marks, id="|".join(key(row)))


@pytest.mark.parametrize("row", [_param(r) for r in ROWS])
def test_planned_runs_hold_the_official_value(row):
    runs = runs_for(row)
    assert runs, f"no planned {row['paper']} run of {row['method']} on {row['pair']}: the table has drifted"
    official = parse(row["official_value"])
    ours = {c.run_id: value(c, row["field"], row["paper"]) for c in runs}
    wrong = {rid: v for rid, v in ours.items() if not same(v, official)}
    assert not wrong, (f"{row['field']}: official {official!r} ({row['official_field']}, {row['source_repo']} "
                       f"{row['source_path']}), planned {wrong}")


def test_the_table_is_well_formed():
    assert list(ROWS[0]) == COLUMNS
    assert len({key(r) for r in ROWS}) == len(ROWS), "one row per (paper, pair, method, field)"
    for r in ROWS:
        assert all(r[c] for c in COLUMNS), r
        assert len(r["source_commit"]) == 40 and set(r["source_commit"]) <= set("0123456789abcdef"), r
    assert set(MISMATCHES) <= {key(r) for r in ROWS}


def fields(paper: str, pair: str, method: str) -> set:
    return {r["field"] for r in ROWS if (r["paper"], r["pair"], r["method"]) == (paper, pair, method)}


SOLVER = {"recipe.batch_size", "recipe.epochs", "recipe.lr", "recipe.milestones", "recipe.gamma",
          "recipe.weight_decay", "recipe.momentum", "recipe.optimizer"}


@pytest.mark.parametrize("pair", PAPER_PAIRS, ids=lambda p: p.key)
def test_every_pair_of_tables_13_14_and_4_is_in_the_table(pair):
    assert {"loss_hparams.tau", "objective.ce_weight", "objective.kd_weight"} <= fields("decoupled_kl", pair.key, "KD")
    assert SOLVER | {"loss_hparams.alpha", "loss_hparams.beta", "loss_hparams.tau", "objective.ce_weight",
                     "recipe.warmup_epochs"} <= fields("decoupled_kl", pair.key, "DKD")
    ikl = SOLVER | {"loss_hparams.alpha", "loss_hparams.beta", "loss_hparams.tau", "loss_hparams.T2",
                    "objective.ce_weight", "recipe.warmup_epochs"}
    assert ikl <= fields("decoupled_kl", pair.key, "IKL-KD + GI")
    assert ikl - {"loss_hparams.T2"} <= fields("decoupled_kl", pair.key, "IKL-KD")


def test_paper_1s_recipe_is_in_the_table():
    recipe = SOLVER | {"recipe.nesterov", "recipe.schedule", "recipe.wd_exempt_bn_bias", "seed"}
    assert recipe | {"loss_hparams.tau", "loss_hparams.alpha", "teacher", "model"} <= fields(
        "kl_vs_mse", "wrn_28_4->wrn_16_2", "KL tau=20 alone")
    assert recipe <= fields("kl_vs_mse", "wrn_28_4->wrn_16_2", "teacher")
    assert recipe <= fields("kl_vs_mse", "wrn_28_4->wrn_16_2", "CE")
