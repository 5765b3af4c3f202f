"""Paper 2's pair table (reproduce/decoupled_kl.py): every pair builds (models, recipes, losses)
and follows the official configs' rules."""
import pytest

from engine.recipes import get_recipe
from losses import build_loss
from models import list_models
from reproduce.decoupled_kl import PAPER_PAIRS

LIGHT_STUDENTS = ("MobileNetV2", "ShuffleV1", "ShuffleV2")


@pytest.mark.parametrize("pair", PAPER_PAIRS, ids=lambda p: p.key)
def test_pair_names_models_recipe_and_loss_that_exist(pair):
    assert {pair.teacher, pair.student} <= set(list_models())
    recipe = get_recipe(pair.recipe)
    assert (recipe.ce_weight, recipe.warmup_epochs) == (0.0, 0)   # the objective is the method's (test_methods)
    build_loss("ikl", **pair.ikl(class_prior=False))
    build_loss("dkd", alpha=1.0, beta=pair.dkd_beta, tau=pair.tau)
    if pair.table != "4":
        # mdistiller: lr 0.01 for MobileNet/ShuffleNet students, else 0.05; CIFAR: T 4, T2 100, warm-up 20
        assert recipe.lr == (0.01 if pair.student in LIGHT_STUDENTS else 0.05)
        assert (pair.tau, pair.T2, pair.warmup, pair.kd_alpha) == (4.0, 100.0, 20, 0.9)
    else:
        assert (pair.tau, pair.T2, pair.warmup, pair.kd_alpha) == (1.0, 1.0, 1, 0.5)


def test_code_names_are_swapped_into_paper_names():
    # official res56->res20 config: ALPHA 1 (soft CE), BETA 4 (wMSE); DKD beta 2
    pair = next(p for p in PAPER_PAIRS if p.key == "resnet56->resnet20")
    assert (pair.alpha, pair.beta, pair.dkd_beta) == (4, 1, 2)
    assert pair.ikl(class_prior=True)["alpha"] == 4 and pair.ikl(class_prior=True)["class_prior"]


def test_tables_hold_the_papers_pairs():
    assert [p.key for p in PAPER_PAIRS if p.table == "13"] == [
        "resnet56->resnet20", "resnet110->resnet32", "resnet32x4->resnet8x4", "wrn_40_2->wrn_16_2",
        "wrn_40_2->wrn_40_1", "vgg13->vgg8"]
    assert len([p for p in PAPER_PAIRS if p.table == "14"]) == 5
    assert {p.key for p in PAPER_PAIRS if p.table == "4"} == {"resnet34->resnet18", "resnet50->MobileNetV1"}
