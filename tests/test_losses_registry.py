"""Every registered loss: registry, hyperparameter checks, dtypes, numerics at huge logits, state."""
import io
import math

import pytest
import torch

from common import UserError
from losses import LOSSES, DistillLoss, build_loss, list_losses

EXPECTED = {"ce", "kl", "mse", "dkl", "ikl", "dkd", "tald", "ls"}

# a few configurations per loss, the defaults first
CONFIGS = [
    ("ce", {}),
    ("kl", {}),
    ("kl", {"tau": math.inf, "alpha": 0.5}),
    ("kl", {"tau": 0.1, "rescale_small_tau": True}),
    ("mse", {}),
    ("mse", {"alpha": 0.7}),
    ("dkl", {}),
    ("ikl", {}),
    ("ikl", {"class_prior": True, "gamma": 0.2, "T2": 4.0}),
    ("ikl", {"break_asymmetry": False, "T2": 1.0}),
    ("dkd", {}),
    ("tald", {}),
    ("tald", {"base": "dkl", "noise": "uniform", "scale": 1.0, "scale_mode": "absolute", "schedule": "cosine"}),
    ("tald", {"base": "ikl", "class_prior": True}),
    ("tald", {"noise": "multiplicative", "scale": 0.5, "share": 0.5}),
    ("tald", {"base": "mse", "noise": "mixture", "scale": 0.1, "scale_mode": "absolute"}),
    ("ls", {}),
    ("ls", {"base": "dkd", "tau": 2.0}),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)]


def batch(scale=3.0, b=4, c=10, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    zs = (scale * torch.randn(b, c, generator=g)).to(dtype)
    zt = (scale * torch.randn(b, c, generator=g)).to(dtype)
    y = torch.randint(0, c, (b,), generator=g)
    return zs, zt, y


def test_registry_lists_every_loss():
    assert set(list_losses()) == EXPECTED
    assert list_losses() == sorted(EXPECTED)
    assert {n for n, _ in CONFIGS} == EXPECTED


def test_unknown_loss_lists_the_known_ones():
    with pytest.raises(UserError) as e:
        build_loss("kld")
    for name in EXPECTED:
        assert name in str(e.value)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_unknown_hyperparameter_is_a_user_error(name):
    with pytest.raises(UserError, match="temperature"):
        build_loss(name, temperature=4.0)


BAD = [
    ("kl", {"tau": 0}, "tau"), ("kl", {"tau": -1.0}, "tau"), ("kl", {"tau": float("nan")}, "tau"),
    ("kl", {"tau": "4"}, "tau"), ("kl", {"alpha": 1.5}, "alpha"), ("kl", {"alpha": -0.1}, "alpha"),
    ("kl", {"rescale_small_tau": 1}, "rescale_small_tau"), ("mse", {"alpha": 2}, "alpha"),
    ("dkl", {"tau": math.inf}, "tau"), ("dkl", {"alpha": -1.0}, "alpha"), ("dkl", {"beta": math.inf}, "beta"),
    ("ikl", {"T2": 0.0}, "T2"), ("ikl", {"tau": math.inf}, "tau"), ("ikl", {"gamma": 0.0}, "gamma"),
    ("ikl", {"class_prior": "yes"}, "class_prior"), ("ikl", {"break_asymmetry": None}, "break_asymmetry"),
    ("ikl", {"beta": -2.0}, "beta"), ("dkd", {"beta": float("nan")}, "beta"), ("dkd", {"tau": -4.0}, "tau"),
    ("tald", {"noise": "laplace"}, "noise"), ("tald", {"scale": -1.0}, "scale"),
    ("tald", {"scale_mode": "per-class"}, "scale_mode"), ("tald", {"schedule": "step"}, "schedule"),
    ("tald", {"seed": 1.5}, "seed"), ("tald", {"base": "tald"}, "base"), ("tald", {"base": "nope"}, "base"),
    ("tald", {"tau": 0.0}, "tau"), ("tald", {"share": 0.0}, "share"), ("tald", {"share": 1.5}, "share"),
    ("tald", {"noise": "multiplicative", "scale_mode": "absolute"}, "multiplicative"),
    ("ls", {"base": "ls"}, "base"), ("ls", {"base": "ce"}, "base"), ("ls", {"tau": -1.0}, "tau"),
]


@pytest.mark.parametrize("name,hp,word", BAD, ids=[f"{n}-{w}-{i}" for i, (n, _, w) in enumerate(BAD)])
def test_bad_hyperparameter_values_are_user_errors_naming_the_parameter(name, hp, word):
    with pytest.raises(UserError, match=word):
        build_loss(name, **hp)


@pytest.mark.parametrize("name,hp", CONFIGS, ids=IDS)
def test_forward_backward_float32(name, hp):
    loss = build_loss(name, **hp)
    assert isinstance(loss, DistillLoss) and name in LOSSES
    zs, zt, y = batch(b=2)
    zs.requires_grad_(True)
    value = loss(zs, zt, y)
    assert value.shape == () and value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert zs.grad is not None and torch.isfinite(zs.grad).all() and zs.grad.abs().sum() > 0
    assert loss.terms and all(t.shape == () and not t.requires_grad for t in loss.terms.values())


@pytest.mark.parametrize("name,hp", CONFIGS, ids=IDS)
@pytest.mark.parametrize("scale", [1e4])
def test_finite_for_huge_logits(name, hp, scale):
    loss = build_loss(name, **hp)
    zs, zt, y = batch(scale=scale, b=6, c=12, seed=1)
    zs.requires_grad_(True)
    value = loss(zs, zt, y)
    value.backward()
    assert torch.isfinite(value), value
    assert torch.isfinite(zs.grad).all()


@pytest.mark.parametrize("name,hp", CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale", [3.0, 1e4])
def test_low_precision_inputs_are_computed_in_float32(name, hp, dtype, scale):
    zs, zt, y = batch(scale=scale, b=6, c=12, dtype=dtype, seed=2)
    low = zs.clone().requires_grad_(True)
    value = build_loss(name, **hp)(low, zt, y)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert low.grad.dtype == dtype and torch.isfinite(low.grad).all()
    # same numbers as a float32 call on the same (rounded) inputs: the upcast happens first
    ref = build_loss(name, **hp)(zs.float(), zt.float(), y)
    torch.testing.assert_close(value, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,hp", CONFIGS, ids=IDS)
def test_autocast_is_switched_off_inside(name, hp):
    zs, zt, y = batch(seed=3)
    ref = build_loss(name, **hp)(zs, zt, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = build_loss(name, **hp)(zs, zt, y)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,hp", CONFIGS, ids=IDS)
def test_state_dict_round_trip_after_an_epoch(name, hp):
    a, b = build_loss(name, **hp), build_loss(name, **hp)
    for i in range(2):
        zs, zt, y = batch(seed=10 + i)
        a.set_progress(0.5 * i)
        a.observe_teacher(zt, y)
        a(zs, zt, y)
    a.end_epoch()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf))
    zs, zt, y = batch(seed=20)
    assert torch.equal(a(zs, zt, y), b(zs, zt, y))


def test_float64_stays_float64():
    zs, zt, y = batch()
    assert build_loss("kl")(zs.double(), zt.double(), y).dtype == torch.float64


def test_bad_inputs_are_rejected():
    loss = build_loss("kl")
    zs, zt, y = batch()
    with pytest.raises(ValueError, match="shape"):
        loss(zs, zt[:, :5], y)
    with pytest.raises(ValueError, match="targets"):
        loss(zs, zt, y[:2])
    with pytest.raises(ValueError, match="integer"):
        loss(zs, zt, y.float())
    with pytest.raises(ValueError, match="teacher"):
        loss(zs, None, y)
    with pytest.raises(ValueError, match="C >= 2"):
        loss(zs[:, :1], zt[:, :1], y * 0)
    with pytest.raises(ValueError, match="progress"):
        loss.set_progress(1.5)
    with pytest.raises(ValueError):
        build_loss("ce").load_state_dict({"prior": None})
