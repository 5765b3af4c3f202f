"""The paper profile's own code path at smoke scale: paper 1's CIFAR-100 pair (WRN-28-4 ->
WRN-16-2), its recipe (nesterov SGD, BN/bias exempt from decay, multistep), its normalisation
and crop/flip, read by torchvision from tiny CIFAR-100 files the test writes. Only the epoch
count and batch size are overridden."""
import dataclasses
import math

import pytest

from data_helpers import accept_any_md5, write_cifar100  # noqa: F401  (a fixture)
from engine import RunDir, train_group
from reproduce.kl_vs_mse import PAPER_PROFILE, Paper1


@pytest.fixture
def paper_builder(results, tmp_path, accept_any_md5):  # noqa: F811
    write_cifar100(tmp_path / "data", n_train=16, n_test=8)
    profile = dataclasses.replace(PAPER_PROFILE, recipe_overrides={"epochs": 1, "batch_size": 8})
    return Paper1(profile, seeds=(9999,))


@pytest.mark.slow
def test_paper_pair_trains_a_teacher_and_kl_and_mse_students(paper_builder):
    b = paper_builder
    teacher = b.teacher()
    students = [b.student("kl", 9999, tau=4.0, teacher=teacher), b.student("kl", 9999, tau=math.inf, teacher=teacher),
                b.student("mse", 9999, teacher=teacher)]
    train_group([teacher], quiet=True, device="cpu")
    train_group(students, quiet=True, device="cpu")
    t = RunDir(teacher)
    assert t.config.model == "wrn_28_4" and t.config.recipe["nesterov"] and t.config.recipe["wd_exempt_bn_bias"]
    assert t.summary()["params"] == pytest.approx(5.872e6, rel=0.02)
    for c in students:
        s = RunDir(c).summary()
        assert c.model == "wrn_16_2" and s["epochs"] == 1
        assert s["teachers"][0]["run_id"] == teacher.run_id
        assert 0.0 <= s["final"]["test_top1"] <= 100.0 and math.isfinite(s["final"]["logit_dist"])


@pytest.mark.slow
@pytest.mark.parametrize("key", ["resnet56->resnet20", "resnet32x4->ShuffleV1"])      # Tables 13 and 14
def test_paper2_pair_trains_every_column(results, tmp_path, accept_any_md5, key):  # noqa: F811
    """One pair of paper 2's Table 13 and one of Table 14 through the paper profile's code path:
    mdistiller recipes, the official per-pair losses, CIFAR-100 read by torchvision."""
    from reproduce.decoupled_kl import METHODS, PAPER_PROFILE as P2, Paper2

    write_cifar100(tmp_path / "data", n_train=16, n_test=8)
    paper = Paper2(dataclasses.replace(P2, recipe_overrides={"epochs": 1, "batch_size": 8}), seeds=(0,))
    pair = next(p for p in paper.pairs if p.key == key)
    teacher = paper.teacher(pair)
    students = [paper.method(pair, m, 0) for m in METHODS[1:]]
    train_group([teacher], quiet=True, device="cpu")
    for group in ([students[0]], students[1:]):             # CE has no teacher; the rest share one
        train_group(group, quiet=True, device="cpu")
    assert RunDir(teacher).summary()["final"]["test_top1"] >= 0
    by_loss = {c.loss: c for c in students}
    assert set(by_loss) == {"ce", "kl", "dkd", "ikl"}
    assert by_loss["kl"].recipe["ce_weight"] == 0 and by_loss["kl"].loss_hparams == {"tau": 4.0, "alpha": 0.9}
    assert by_loss["dkd"].recipe["warmup_epochs"] == 20 and by_loss["dkd"].recipe["ce_weight"] == 1.0
    assert by_loss["dkd"].recipe["lr"] == (0.01 if "Shuffle" in key else 0.05)
    for c in students:
        s = RunDir(c).summary()
        assert s["epochs"] == 1 and math.isfinite(s["final"]["test_top1"])


@pytest.mark.slow
def test_paper3_cifar_pair_trains_ce_kd_and_tald(results, tmp_path, accept_any_md5):  # noqa: F811
    """Paper 3's paper profile on tiny CIFAR-100 files: its WRN-40-2 -> WRN-16-2 row (CE, KD, TALD)."""
    from reproduce.logit_distortion import PAPER_PROFILE as P3, Paper3

    write_cifar100(tmp_path / "data", n_train=16, n_test=8)
    paper = Paper3(dataclasses.replace(P3, recipe_overrides={"epochs": 1, "batch_size": 8}), seeds=(0,))
    section = paper.paper_scale()
    row = next(r for r in section.tables[0].rows if r["pair"] == "wrn_40_2 -> wrn_16_2")
    teacher = row["teacher"].runs[0]
    students = [row[k].runs[0] for k in ("CE", "CE + KL", "TALD 0.25")]
    train_group([teacher], quiet=True, device="cpu")
    train_group([students[0]], quiet=True, device="cpu")
    train_group(students[1:], quiet=True, device="cpu")
    tald = RunDir(students[2])
    assert tald.config.loss == "tald" and tald.config.loss_hparams["scale"] == 0.25
    assert tald.config.recipe["ce_weight"] == 1.0 and tald.config.dataset == "cifar100"
    for c in students:
        assert math.isfinite(RunDir(c).summary()["final"]["test_top1"])
