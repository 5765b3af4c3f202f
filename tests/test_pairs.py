"""Paper 2's pair table: every pair builds (models, recipe, loss) and follows the paper's rules."""
import pytest

from common import UserError
from engine.pairs import PAPER2_PAIRS, paper2_pair
from engine.recipes import get_recipe
from losses import build_loss
from models import list_models

LIGHT_STUDENTS = ("MobileNetV2", "ShuffleV1", "ShuffleV2")


@pytest.mark.parametrize("key", list(PAPER2_PAIRS), ids=lambda k: f"{k[0]}->{k[1]}")
def test_pair_names_models_recipe_and_loss_that_exist(key):
    pair = PAPER2_PAIRS[key]
    assert {pair.teacher, pair.student} <= set(list_models())
    recipe = get_recipe(pair.recipe)
    assert recipe.ce_weight == 1.0                     # the official trainer adds CE 1.0
    build_loss("ikl", **pair.ikl_hparams())
    if pair.recipe != "imagenet":
        # mdistiller: lr 0.01 for MobileNet/ShuffleNet students, else 0.05
        assert recipe.lr == (0.01 if pair.student in LIGHT_STUDENTS else 0.05)
        assert (pair.tau, pair.T2, pair.class_prior) == (4.0, 100.0, False)
    else:
        assert (pair.tau, pair.T2, pair.class_prior) == (1.0, 1.0, True)


def test_code_names_are_swapped_into_paper_names():
    # official res56->res20 config: ALPHA 1 (soft CE), BETA 4 (wMSE)
    pair = paper2_pair("resnet56", "resnet20")
    assert (pair.alpha, pair.beta) == (4, 1)
    assert pair.ikl_hparams()["alpha"] == 4


def test_unknown_pair_lists_the_known_ones():
    with pytest.raises(UserError, match="resnet56->resnet20"):
        paper2_pair("resnet56", "vgg8")
