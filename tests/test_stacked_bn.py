"""Stacked students with BatchNorm, groups of several architectures, the recipe's `stack` field,
and the exact fast pooling of engine/fastops.py. No timings here (`make bench` measures them)."""
import copy
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

from common import UserError
from engine import RunDir, make_config, teacher_config, train, train_group
from engine.fastops import GlobalMaxPool1dFast, MaxPool1dFast, accelerate
from engine.trainer import Trainer
from models import build_model

SIGNALS = {"num_train": 192, "num_test": 96, "num_classes": 4, "shape": [1, 24]}     # ShiftNoise signals
KEYS = ("train_loss", "train_top1", "test_loss", "test_top1", "agree_top1", "kl_teacher_student", "lr")

pytestmark = pytest.mark.usefixtures("results")    # conftest: a temporary results/data folder


def teacher():
    return train(teacher_config("synthetic", "cnn1d_teacher", dataset_options=SIGNALS), quiet=True)


def student(t, model, loss="kl", hp=None, epochs=3, **recipe):
    return make_config("exp", "synthetic", model, loss=loss, loss_hparams=hp if hp is not None else {"tau": 4.0},
                       teachers=[t.config.run_id], dataset_options=SIGNALS, recipe="smoke",
                       recipe_overrides={"epochs": epochs, **recipe})


def close_rows(rows_a, rows_b, rel=1e-4):
    assert [r["epoch"] for r in rows_a] == [r["epoch"] for r in rows_b]
    for a, b in zip(rows_a, rows_b):
        for k in KEYS:
            if k in a:
                assert a[k] == pytest.approx(b[k], rel=rel, abs=1e-5), (k, a[k], b[k])


def close_weights(rd, expected: dict):
    w = torch.load(rd.model_file)
    assert w.keys() == expected.keys()
    for k in w:
        if w[k].dtype == torch.int64:                  # num_batches_tracked: exactly the step count
            assert torch.equal(w[k], expected[k]), k
        else:
            torch.testing.assert_close(w[k], expected[k], rtol=1e-4, atol=1e-5, msg=k)


# ------------------------------------------------------------------ engine/fastops.py
@pytest.mark.parametrize("length", [40, 41, 7, 2])
def test_fast_pools_equal_torch_values_and_gradients(length):
    torch.manual_seed(0)
    x = torch.randn(6, 3, length)
    x[0, 0, :] = 1.0                                   # ties: the first of a pair / row wins
    x[1, 1, : length // 2 * 2] = torch.tensor([2.0, 2.0] * (length // 2))
    x = torch.relu(x).requires_grad_(True)             # relu: many zero ties, as in the models
    for ref, cls in ((nn.MaxPool1d(2), MaxPool1dFast), (nn.AdaptiveMaxPool1d(1), GlobalMaxPool1dFast)):
        fast = copy.deepcopy(ref)
        assert accelerate(fast) == 1 and type(fast) is cls
        g = torch.randn_like(ref(x))
        y_ref, y_fast = ref(x), fast(x)
        (gx_ref,), (gx_fast,) = torch.autograd.grad(y_ref, x, g), torch.autograd.grad(y_fast, x, g)
        assert torch.equal(y_ref, y_fast) and torch.equal(gx_ref, gx_fast)
        with torch.no_grad():
            assert torch.equal(ref(x), fast(x))


def test_fast_pool_takes_a_nan_as_torch_does():
    x = torch.tensor([[[float("nan"), 1.0, 1.0, float("nan"), 3.0, 2.0]]], requires_grad=True)
    ref, fast = nn.MaxPool1d(2), nn.MaxPool1d(2)
    accelerate(fast)
    g = torch.tensor([[[1.0, 2.0, 3.0]]])
    y_ref, y_fast = ref(x), fast(x)
    assert torch.equal(y_ref.isnan(), y_fast.isnan()) and y_fast[0, 0, 2] == 3.0
    assert torch.equal(torch.autograd.grad(y_ref, x, g)[0], torch.autograd.grad(y_fast, x, g)[0])


def test_only_exact_cases_are_swapped():
    model = nn.Sequential(nn.MaxPool1d(3), nn.MaxPool1d(2, stride=1), nn.MaxPool1d(2, ceil_mode=True),
                          nn.AdaptiveMaxPool1d(2), nn.MaxPool1d(2), nn.AdaptiveMaxPool1d(1))
    assert accelerate(model) == 2
    assert [type(m).__name__ for m in model] == ["MaxPool1d"] * 3 + ["AdaptiveMaxPool1d", "MaxPool1dFast",
                                                                     "GlobalMaxPool1dFast"]


@pytest.mark.parametrize("name", ["cnn1d_student", "cnn1d_s100_shallow", "res1d_s100", "cnn1d_teacher"])
def test_accelerated_models_train_bit_identically(name):
    """Forward and gradient of whole models, plain and under vmap (stacked), equal bit for bit."""
    torch.manual_seed(1)
    model = build_model(name, num_classes=10, in_channels=1)
    fast = copy.deepcopy(model)
    accelerate(fast)
    assert fast.state_dict().keys() == model.state_dict().keys()
    x = torch.randn(16, 1, 40)
    outs = []
    for m in (model, fast):
        out = m(x).logits
        outs.append((out.detach(), torch.autograd.grad(out.square().sum(), list(m.parameters()))))
    assert torch.equal(outs[0][0], outs[1][0]) and all(torch.equal(a, b) for a, b in zip(outs[0][1], outs[1][1]))
    params = {k: torch.stack([v.detach(), 1.1 * v.detach()]).requires_grad_(True) for k, v in model.named_parameters()}
    buffers = {k: torch.stack([v, v.clone()]) for k, v in model.named_buffers()}
    grads = []
    for m in (model, copy.deepcopy(fast)):
        b = {k: v.clone() for k, v in buffers.items()}
        out = vmap(lambda p, b, x: functional_call(m, (p, b), (x,)).logits, in_dims=(0, 0, None))(params, b, x)
        grads.append(torch.autograd.grad(out.square().sum(), list(params.values())) + (out.detach(),))
    assert all(torch.equal(a, b) for a, b in zip(*grads))


# ------------------------------------------------------------------ stacked BatchNorm students
@pytest.mark.parametrize("model", ["cnn1d_s100_shallow", "res1d_s100"])
def test_stacked_bn_students_equal_separate_runs(model):
    """Parameters, running statistics, num_batches_tracked and every logged metric, to float32
    rounding (rel 1e-4), for three epochs; Adam."""
    t = teacher()
    configs = [student(t, model, "kl", {"tau": 1.0}), student(t, model, "mse", {}),
               student(t, model, "ikl", {"tau": 4.0}), student(t, model, "ce", {})]
    stacked = train_group(configs, quiet=True, stack=True)
    assert all(rd.summary()["stacked"] and rd.summary()["stack_size"] == 4 for rd in stacked)
    rows = [rd.metrics() for rd in stacked]
    saved = [torch.load(rd.model_file) for rd in stacked]
    alone = [train(c, quiet=True, force=True, stack=False) for c in configs]
    for r, w, rd in zip(rows, saved, alone):
        assert not rd.summary()["stacked"]
        close_rows(r, rd.metrics())
        ref = torch.load(rd.model_file)
        assert w.keys() == ref.keys() and any("running_var" in k for k in w)
        for k in w:
            if k.endswith("num_batches_tracked"):
                assert w[k].item() == ref[k].item() == 3 * math.ceil(SIGNALS["num_train"] / 64)
            else:
                torch.testing.assert_close(w[k], ref[k], rtol=1e-4, atol=1e-5, msg=k)
            assert w[k].untyped_storage().nbytes() == ref[k].untyped_storage().nbytes()   # not the whole stack


def test_stacked_bn_sgd_equals_separate_runs():
    t = teacher()
    configs = [student(t, "cnn1d_s100_thin", "kl", {"tau": tau}, epochs=2, optimizer="sgd", lr=0.05)
               for tau in (1.0, 4.0)]
    stacked = [rd.metrics() for rd in train_group(configs, quiet=True, stack=True)]
    for rows, c in zip(stacked, configs):
        close_rows(rows, train(c, quiet=True, force=True, stack=False).metrics())


def test_stacked_bn_checkpoints_resume_unstacked_and_stacked():
    """Stacked for 2 epochs, then one run resumed alone for its last 2; and both runs trained
    alone for 2 epochs, then resumed as a stacked group. Each ends where an uninterrupted
    separate run ends (rounding)."""
    t = teacher()
    configs = [student(t, "cnn1d_s100_shallow", "kl", {"tau": tau}, epochs=4) for tau in (1.0, 4.0)]
    straight = [train(c, quiet=True, stack=False) for c in configs]
    expected = [rd.metrics() for rd in straight]
    weights = [torch.load(rd.model_file) for rd in straight]
    trainer = Trainer(configs, quiet=True, force=True, stack=True)
    members = [trainer._make_member(c) for c in configs]
    trainer.stacked = trainer._maybe_stack(members)
    assert trainer.stacked is not None and len(trainer.stacked.groups) == 1
    for epoch in range(2):
        trainer._train_epoch(members, epoch)
    assert RunDir(configs[0]).load_checkpoint()["epoch"] == 2
    resumed_alone = train(configs[0], quiet=True, stack=False)
    close_rows(resumed_alone.metrics(), expected[0])
    close_weights(resumed_alone, weights[0])
    trainer = Trainer(configs, quiet=True, force=True, stack=False)
    members = [trainer._make_member(c) for c in configs]
    for epoch in range(2):
        trainer._train_epoch(members, epoch)
    both = train_group(configs, quiet=True, stack=True)
    assert all(rd.summary()["stacked"] for rd in both)
    for rd, rows, w in zip(both, expected, weights):
        close_rows(rd.metrics(), rows)
        close_weights(rd, w)


def test_mixed_architectures_stack_per_architecture():
    t = teacher()
    configs = [student(t, "cnn1d_s100_shallow", "kl", {"tau": 1.0}, epochs=2),
               student(t, "res1d_s100", "kl", {"tau": 1.0}, epochs=2),
               student(t, "cnn1d_s100_shallow", "mse", {}, epochs=2),
               student(t, "cnn1d_s100_thin", "kl", {"tau": 4.0}, epochs=2),      # alone: plain loop
               student(t, "res1d_s100", "dkd", {}, epochs=2)]
    trainer = Trainer(configs, quiet=True, stack=True)
    members = [trainer._make_member(c) for c in configs]
    stacks = trainer._maybe_stack(members)
    assert sorted(len(st.members) for st in stacks.groups) == [2, 2]
    assert [m.config.model for m in stacks.plain] == ["cnn1d_s100_thin"]
    group = train_group(configs, quiet=True, force=True, stack=True)
    assert [rd.summary()["stacked"] for rd in group] == [True, True, True, False, True]
    for rd, c in zip(group, configs):
        close_rows(rd.metrics(), train(c, quiet=True, force=True, stack=False).metrics())


def test_what_cannot_stack_is_refused_or_left_to_the_plain_loop():
    from engine.stacked import model_reason

    assert "dropout" in model_reason(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)))
    assert "momentum=None" in model_reason(nn.Sequential(nn.BatchNorm1d(2, momentum=None)))
    odd = nn.Linear(2, 2)
    odd.register_buffer("scale", torch.ones(2))
    assert "other than BatchNorm" in model_reason(odd)
    assert model_reason(build_model("res1d_s100", num_classes=4, in_channels=1)) is None
    t = teacher()
    two_models = [student(t, "cnn1d_s100_shallow", epochs=1), student(t, "res1d_s100", epochs=1)]
    with pytest.raises(UserError, match="share an architecture"):
        train_group(two_models, quiet=True, stack=True)
    # "auto" on the CPU: nothing stacks unless the recipe asks for it
    trainer = Trainer(two_models + [student(t, "res1d_s100", "mse", {}, epochs=1)], quiet=True)
    members = [trainer._make_member(c) for c in trainer.configs]
    assert trainer._maybe_stack(members) is None


# ------------------------------------------------------------------ the recipe's `stack` field
def test_recipe_stack_field_is_in_the_run_id_only_when_set():
    from engine.recipes import get_recipe

    plain = make_config("x", "mnist1d", "cnn1d_student", loss="kl", loss_hparams={"tau": 4.0}, teachers=["t"],
                        recipe="mini_student", dataset_options={"num_train": 1000})
    # the default stays out of the config, so a config written before the field has the same id
    assert "stack" not in plain.recipe and plain.recipe_obj().stack is False
    from engine import RunConfig

    assert RunConfig.from_dict(plain.to_dict()).run_id == plain.run_id
    stacked = make_config("x", "mnist1d", "cnn1d_student", loss="kl", loss_hparams={"tau": 4.0}, teachers=["t"],
                          recipe="mini_student", dataset_options={"num_train": 1000},
                          recipe_overrides={"stack": True})
    assert stacked.recipe["stack"] is True and stacked.run_id != plain.run_id
    with pytest.raises(UserError, match="stack must be"):
        get_recipe("smoke", stack="yes")


def test_recipe_stack_field_stacks_on_the_cpu_by_default():
    t = teacher()
    asked = [student(t, "cnn1d_s100_shallow", "kl", {"tau": tau}, epochs=1, stack=True) for tau in (1.0, 4.0)]
    plain = student(t, "cnn1d_s100_shallow", "mse", {}, epochs=1)        # same architecture, recipe says no
    rds = train_group(asked + [plain], quiet=True)                        # stack="auto"
    assert [rd.summary()["stacked"] for rd in rds] == [True, True, False]
    assert [rd.summary().get("stack_size") for rd in rds] == [2, 2, None]
    rds = train_group(asked, quiet=True, force=True, stack=False)         # the trainer option still wins
    assert not any(rd.summary()["stacked"] for rd in rds)
