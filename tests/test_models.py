"""Model zoo: sizes match the field-standard definitions, every model returns
ModelOutput(logits, features) with features = the classifier's input, and a two-sample
forward/backward reaches every parameter."""
import pytest
import torch

from common import UserError
from models import MODELS, ModelOutput, build_model, list_models

# Parameters at 100 classes and penultimate widths: docs/papers.md, "Standard CIFAR
# model sizes" (the CRD / mdistiller definitions), in millions.
CIFAR_SIZES = {
    "resnet8": (0.084, 64), "resnet14": (0.181, 64), "resnet20": (0.278, 64), "resnet32": (0.473, 64),
    "resnet44": (0.667, 64), "resnet56": (0.862, 64), "resnet110": (1.737, 64),
    "resnet8x4": (1.234, 256), "resnet32x4": (7.434, 256),
    "wrn_16_1": (0.181, 64), "wrn_16_2": (0.703, 128), "wrn_16_4": (2.772, 256), "wrn_28_2": (1.479, 128),
    "wrn_28_4": (5.872, 256), "wrn_40_1": (0.570, 64), "wrn_40_2": (2.255, 128),
    "vgg8": (3.965, 512), "vgg11": (9.277, 512), "vgg13": (9.462, 512), "vgg16": (14.774, 512),
    "vgg19": (20.087, 512),
    "MobileNetV2": (0.813, 1280), "ShuffleV1": (0.949, 960), "ShuffleV2": (1.356, 1024),
    "ResNet50": (23.705, 2048),
}
# Mini models at 10 classes on (B, 1, 40) / 1-channel images: parameters and feature width.
# Teacher and student sizes are the mini-notes' (88.8k, 6.5k); the others are ours.
MINI_SIZES = {
    "cnn1d_teacher": (88_778, 128), "cnn1d_student": (6_506, 320), "cnn1d_medium": (22_890, 64),
    "mlp1d": (6_538, 128), "cnn2d_teacher": (66_026, 64), "cnn2d_student": (6_090, 128),
}
# Models for the 100-class mnist1d_hier (models/mini100.py) at 100 classes on (B, 1, 40).
MINI100_SIZES = {
    "cnn1d_t100": (100_004, 128), "cnn1d_m100": (17_404, 48), "cnn1d_s100_shallow": (12_996, 64),
    "cnn1d_s100_thin": (5_728, 24), "cnn1d_s100_wide": (38_180, 128), "res1d_s100": (10_612, 32),
}
MINI_1D = {"cnn1d_teacher", "cnn1d_student", "cnn1d_medium", "mlp1d"}
MINI_2D = {"cnn2d_teacher", "cnn2d_student"}
# ImageNet models: (parameters at 1000 classes, feature width); torchvision / mdistiller values.
IMAGENET_SIZES = {
    "resnet18": (11_689_512, 512), "resnet34": (21_797_672, 512), "resnet50": (25_557_032, 2048),
    "resnet101": (44_549_160, 2048), "resnet152": (60_192_808, 2048), "MobileNetV1": (4_231_976, 1024),
}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def spec(name: str) -> tuple[dict, tuple[int, ...]]:
    """Build arguments and a cheap 2-sample input shape for a registered model."""
    if name in MINI_1D:
        return {"num_classes": 10, "in_channels": 1}, (2, 1, 40)
    if name in MINI100_SIZES:
        return {"num_classes": 100, "in_channels": 1}, (2, 1, 40)
    if name in MINI_2D:
        return {"num_classes": 10, "in_channels": 1}, (2, 1, 8, 8)
    if name in IMAGENET_SIZES:
        return {"num_classes": 100, "in_channels": 3}, (2, 3, 64, 64)
    return {"num_classes": 100, "in_channels": 3}, (2, 3, 32, 32)


def test_every_model_has_a_known_kind():
    known = set(CIFAR_SIZES) | set(MINI_SIZES) | set(MINI100_SIZES) | set(IMAGENET_SIZES)
    assert set(list_models()) == known, "add a new model to the size tables of this test"


@pytest.mark.parametrize("name", sorted(CIFAR_SIZES))
def test_cifar_sizes_match_the_standard(name):
    millions, width = CIFAR_SIZES[name]
    model = build_model(name, num_classes=100)
    assert n_params(model) == pytest.approx(millions * 1e6, rel=0.02)
    assert model.feature_dim == width


@pytest.mark.parametrize("name", sorted(MINI_SIZES))
def test_mini_sizes(name):
    count, width = MINI_SIZES[name]
    model = build_model(name, num_classes=10, in_channels=1)
    assert n_params(model) == count
    assert model.feature_dim == width


@pytest.mark.parametrize("name", sorted(MINI100_SIZES))
def test_mini100_sizes(name):
    count, width = MINI100_SIZES[name]
    model = build_model(name, num_classes=100, in_channels=1)
    assert n_params(model) == count
    assert model.feature_dim == width


def test_mini_notes_rounded_sizes():
    assert round(n_params(build_model("cnn1d_teacher", num_classes=10, in_channels=1)), -2) == 88_800
    assert round(n_params(build_model("cnn1d_student", num_classes=10, in_channels=1)), -2) == 6_500


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "MobileNetV1"])
def test_imagenet_sizes(name):
    count, width = IMAGENET_SIZES[name]
    model = build_model(name, num_classes=1000)
    assert n_params(model) == count
    assert model.feature_dim == width


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    kwargs, shape = spec(name)
    model = build_model(name, **kwargs).train()
    out = model(torch.randn(shape))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (2, kwargs["num_classes"])
    assert out.features.shape == (2, model.feature_dim)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.features).all()
    # Random projections so no gradient cancels through BatchNorm (a plain sum would).
    loss = (out.logits * torch.randn_like(out.logits)).sum() + (out.features * torch.randn_like(out.features)).sum()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}.{pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}.{pname} has an all-zero gradient"


@pytest.mark.parametrize("name", list_models())
def test_features_are_the_classifier_input(name):
    torch.manual_seed(0)
    kwargs, shape = spec(name)
    model = build_model(name, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.randn(shape))
        assert isinstance(model.classifier, torch.nn.Linear)
        assert model.classifier.in_features == model.feature_dim
        torch.testing.assert_close(model.classifier(out.features), out.logits)


@pytest.mark.parametrize("name", sorted(CIFAR_SIZES))
def test_cifar_models_run_on_small_one_channel_images(name):
    grey = build_model(name, num_classes=10, in_channels=1).eval()
    for size in (8, 16):
        with torch.no_grad():
            out = grey(torch.randn(2, 1, size, size))
        assert out.logits.shape == (2, 10) and out.features.shape == (2, grey.feature_dim)
        assert torch.isfinite(out.logits).all()
    # Only the stem's weight depends on in_channels: 2 of its 3 input-channel slices go.
    rgb = build_model(name, num_classes=10, in_channels=3)
    first = next(p for p in rgb.parameters() if p.dim() == 4)
    assert n_params(rgb) - n_params(grey) == first.numel() // first.shape[1] * 2


@pytest.mark.parametrize("name,shape", [("cnn2d_teacher", (2, 1, 28, 28)), ("cnn2d_student", (2, 1, 28, 28)),
                                        ("resnet18", (2, 1, 32, 32)), ("MobileNetV1", (2, 1, 32, 32))])
def test_other_input_sizes(name, shape):
    model = build_model(name, num_classes=10, in_channels=1).eval()
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert out.logits.shape == (2, 10)


def test_mini_length_option_and_shape_errors():
    student = build_model("cnn1d_student", num_classes=10, in_channels=1, length=64)
    assert student.feature_dim == 32 * 16
    assert student(torch.randn(2, 1, 64)).logits.shape == (2, 10)
    with pytest.raises(UserError, match="length"):
        student(torch.randn(2, 1, 40))
    mlp = build_model("mlp1d", num_classes=10, in_channels=1, length=64)
    assert mlp(torch.randn(2, 1, 8, 8)).logits.shape == (2, 10)
    with pytest.raises(UserError, match="length"):
        mlp(torch.randn(2, 1, 40))


def test_width_multiplier():
    base, wide = build_model("resnet8"), build_model("resnet8", width=2.0)
    assert wide.feature_dim == 2 * base.feature_dim and n_params(wide) > 3 * n_params(base)
    half = build_model("wrn_16_2", width=0.5)
    assert half.feature_dim == 64 and half(torch.randn(2, 3, 16, 16)).logits.shape == (2, 100)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UserError) as err:
        build_model("resnet9000")
    assert "resnet9000" in str(err.value) and "resnet32x4" in str(err.value) and "cnn1d_student" in str(err.value)


def test_unknown_option_is_a_user_error():
    with pytest.raises(UserError, match="widht"):
        build_model("resnet8", widht=2.0)


def test_registry_and_defaults():
    assert list_models() == MODELS.names() == sorted(list_models())
    model = build_model("resnet8")
    assert model.classifier.out_features == 100 and model.conv1.in_channels == 3
    assert ModelOutput._fields == ("logits", "features")
