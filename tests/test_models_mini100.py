"""The 100-class mini models (models/mini100.py): pooled penultimate features, the sizes
the module docstring states, the pair relations it claims, and one short training step on
mnist1d_hier-shaped inputs. (tests/test_models.py covers forward/backward reaching every
parameter and classifier(features) == logits for every registered model, these included.)"""
import re

import pytest
import torch

from models import build_model, list_models
from models import mini100
from models.mini100 import PAIRS, POOL, SEQUENTIAL, Plain1d, Res1d

NAMES = ["cnn1d_t100", "cnn1d_m100", "cnn1d_s100_shallow", "cnn1d_s100_thin", "cnn1d_s100_wide", "res1d_s100"]


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered_and_named_in_the_docstring():
    assert set(NAMES) <= set(list_models())
    for name in NAMES:
        assert f"`{name}`" in mini100.__doc__


def test_docstring_parameter_counts_are_exact():
    """The docstring's table states each model's parameters at 100 classes."""
    for name in NAMES:
        row = re.search(rf"`{name}`\s*\|\s*([\d,]+)", mini100.__doc__)
        assert row, f"{name} has no row in the docstring's table"
        assert n_params(build_model(name, num_classes=100, in_channels=1)) == int(row.group(1).replace(",", ""))


@pytest.mark.parametrize("name", NAMES)
def test_features_are_pooled_and_independent_of_length(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=100, in_channels=1).eval()
    assert isinstance(model.pool, (torch.nn.AdaptiveMaxPool1d, torch.nn.AdaptiveAvgPool1d))
    with torch.no_grad():
        for length in (16, 40, 64):
            out = model(torch.randn(3, 1, length))
            assert out.features.shape == (3, model.feature_dim) and out.logits.shape == (3, 100)
            torch.testing.assert_close(model.classifier(out.features), out.logits)
    # the classifier's input is the pooled body output, nothing else
    x = torch.randn(2, 1, 40)
    with torch.no_grad():
        body = model.body(x) if isinstance(model, Plain1d) else model.blocks(model.stem(x))
        torch.testing.assert_close(model(x).features, model.pool(body).flatten(1))


def test_other_class_counts_and_channels():
    for name in NAMES:
        model = build_model(name, num_classes=10, in_channels=2)
        assert model(torch.randn(2, 2, 40)).logits.shape == (2, 10)


def test_capacity_order_and_size_ranges():
    sizes = {n: n_params(build_model(n, num_classes=100, in_channels=1)) for n in NAMES}
    assert 90_000 <= sizes["cnn1d_t100"] <= 110_000                    # about 100k (mini-notes)
    assert sizes["cnn1d_t100"] > 5 * sizes["cnn1d_m100"]
    for student in ("cnn1d_s100_shallow", "cnn1d_s100_thin", "res1d_s100"):
        assert 2_000 <= sizes[student] <= 30_000                       # cheap students
    assert sizes["cnn1d_s100_wide"] > 2 * sizes["cnn1d_s100_shallow"]  # the width probe
    assert sizes["cnn1d_m100"] > sizes["cnn1d_s100_shallow"] > sizes["cnn1d_s100_thin"]


def _convs(model: Plain1d) -> list[tuple[int, int]]:
    return [item for item in model.layout if item != POOL]


def test_pairs_are_what_they_claim():
    build = lambda n: build_model(n, num_classes=100, in_channels=1)  # noqa: E731
    deep, shallow = (build(n) for n in PAIRS["deep->shallow"])
    assert len(_convs(deep)) > len(_convs(shallow))                               # fewer convs
    wide, thin = (build(n) for n in PAIRS["wide->thin"])
    assert [k for _, k in _convs(wide)] == [k for _, k in _convs(thin)]          # same depth and kernels
    assert [w // 2 for w, _ in _convs(wide)] == [w for w, _ in _convs(thin)]     # half the width
    teacher, other = (build(n) for n in PAIRS["cross-family"])
    assert isinstance(teacher, Plain1d) and isinstance(other, Res1d)
    t, m, s = (build(n) for n in SEQUENTIAL)
    assert n_params(t) > n_params(m) > n_params(s)
    assert all(n in NAMES for pair in PAIRS.values() for n in pair)


def test_res1d_shortcuts_and_train_step():
    model = build_model("res1d_s100", num_classes=100, in_channels=1)
    assert all(b.shortcut is not None for b in model.blocks)          # every block changes stride
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 40), torch.randint(0, 100, (16,))
    for name in NAMES:
        net = build_model(name, num_classes=100, in_channels=1).train()
        opt = torch.optim.Adam(net.parameters(), 1e-2)
        first = None
        for _ in range(5):
            loss = torch.nn.functional.cross_entropy(net(x).logits, y)
            first = loss.item() if first is None else first
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert loss.item() < first, f"{name} did not fit 16 samples in 5 steps"
