"""One name, one objective (reproduce/methods.py) across every paper plan of a profile; recipes carry
no part of the objective; the paper profile's methods equal the official settings."""
import pytest

from engine.recipes import get_recipe, list_recipes
from reproduce import methods
from reproduce.papers import experiments
from reproduce.plan import configs_of, runs_in

PROFILES = ("smoke", "mini100", "paper")


def _student_configs(profile: str):
    for e in experiments():
        if profile not in e.profiles:
            continue
        plan = e.plan(profile)
        yield from (c for s in plan.sections for c in configs_of(s) if not c.is_teacher)
        yield from (r for c in plan.claims for r in runs_in([c.a, c.b, c.data]) if not r.is_teacher)


@pytest.mark.parametrize("profile", PROFILES)
def test_one_name_one_objective(profile):
    """Within a profile and a pair, a method name never stands for two objectives, nor an objective for two
    names (a method's settings may differ between pairs where the paper tunes them per pair)."""
    by_name, by_objective = {}, {}
    for c in _student_configs(profile):
        if not c.method:
            continue
        words = methods.config_words(c)
        pair = (c.dataset, c.model, tuple(t.split("-")[0] for t in c.teachers), c.label_noise.tag)
        by_name.setdefault((c.method, pair), set()).add(words)
        by_objective.setdefault((words, pair), set()).add(c.method)
    assert by_name, "no named method planned"
    assert {n: o for n, o in by_name.items() if len(o) > 1} == {}
    assert {k: n for k, n in by_objective.items() if len(n) > 1} == {}


def test_named_recipes_carry_no_objective():
    for name in list_recipes():
        r = get_recipe(name)
        assert (r.ce_weight, r.kd_weight, r.warmup_epochs) == (0.0, 1.0, 0), name


def test_paper_profile_methods_match_the_official_settings():
    """mdistiller KD (0.1 CE + 0.9 KL, tau 4, no warm-up), DKD (CE 1, warm-up 20), kd_data's KL alone,
    the authors' DKD + LS (alpha and beta x9) on ResNet32x4 -> ResNet8x4."""
    from reproduce.compare import Compare
    from reproduce.decoupled_kl import PAPER_PROFILE

    c = Compare(PAPER_PROFILE, (0,))
    pair = c.pairs[0]
    runs = {n: c.run(pair, n, 0) for n in c.method_names()}

    def objective(n):
        r = runs[n].recipe
        return runs[n].loss, runs[n].loss_hparams, r["ce_weight"], r["kd_weight"], r["warmup_epochs"]

    assert objective("KD") == ("kl", {"tau": 4.0, "alpha": 0.9}, 0.0, 1.0, 0)
    assert objective("DKD") == ("dkd", {"alpha": 1.0, "beta": 8, "tau": 4.0}, 1.0, 1.0, 20)
    assert objective("LMSE") == ("mse", {}, 0.0, 1.0, 0)
    kl_alone = next(n for n in runs if n.startswith("KL tau="))
    assert objective(kl_alone)[2:] == (0.0, 1.0, 0)          # kd_data: KL alone, no CE, no warm-up
    assert objective("DKD + LS") == ("ls", {"base": "dkd", "tau": 2.0, "alpha": 9.0, "beta": 72.0}, 1.0, 1.0, 20)
    assert objective("KD + LS") == ("ls", {"base": "kl", "tau": 2.0}, 0.1, 9.0, 0)
    assert runs["IKL-KD"].loss_hparams["class_prior"] is False


def test_objective_words_name_every_weight():
    words = methods.objective_words("dkd", {"alpha": 1.0, "beta": 2.0, "tau": 4.0}, 1.0, 1.0, 8)
    assert words == "1 CE + 1 x [DKD(alpha 1, beta 2, tau 4)], warm-up 8 epochs"
    assert methods.objective_words("kl", {"tau": 4.0, "alpha": 0.9}, 0.0, 1.0, 0) == "1 x [0.9 tau^2 KL(tau 4) + 0.1 CE]"
    assert methods.objective_words("ce", {}, 1.0, 1.0, 20) == "CE"
