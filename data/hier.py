"""`mnist1d_hier`: a 100-class MNIST-1D with a known class hierarchy (20 coarse x 5 fine),
the mini counterpart of CIFAR-100's 20 superclasses x 5 classes (the mini notes' measured
starting point for a many-class setting). Generated offline and deterministically, cached
like `mnist1d`.

Construction (every number below is a default option):
1. Coarse templates (20 x 12 points): mnist1d's 10 digit templates (`get_templates()`,
   std 1/6, starting and ending at 0), then 10 smooth random curves
   `sum_{k=1..4} a_k sin(k pi s)`, `a_k ~ N(0, 1) / k`, `s = linspace(0, 1, 12)`, each
   rescaled to std 1/6 (the digit templates' scale; they start and end at 0 too).
2. Fine templates (100): fine class `5 c + j` (j = 0..4) of coarse class c is
   `coarse_c + sigma * p_cj`, `p = sum_{k=1..5} b_k sin(k pi s)`, `b_k ~ N(0, 1) / sqrt(k)`,
   p rescaled to std 1/6; the sum shifted so its first point is 0 and rescaled to std 1/6.
   sigma = 0.4 keeps the hierarchy visible (mini-notes: sigma 0.8 loses most of it).
   All draws come from numpy's default_rng(template_seed = 0), in this order: the (10, 4)
   curve coefficients, then the (20, 5, 5) perturbation coefficients (c, j, k row-major).
   The time axis `t` is the digit templates' (linspace(-5, 5, 12) / 6).
3. Signals: `mnist1d.data.make_dataset(args, template=...)` with its default arguments except
   num_samples 14000 (140 per fine class) and train_split 8000/14000, generator seed 42
   (its own default): each signal is a fine template padded, stretched, scaled, translated,
   given correlated noise (in the padding) and iid noise, sheared and resampled to 40 points
   (mnist1d.transform); the 14000 are shuffled and the first 8000 are the training set
   (69-93 per class at the defaults: a random split, not stratified), the other 6000 the
   test set. The generator standardises x (mean 0, std 1 over all signals): no further
   normalisation. mnist1d's downloading helper (`get_dataset`) is never called. About 4 s.
Measured at the defaults: in template space a class's mean distance to its 4 siblings is
0.30x its mean distance to the 95 others (0.50x at worst; sigma 0.8: tested looser); on the
raw signals, 19.9 % of a 1-NN classifier's errors (test -> train) fall on a sibling (chance
4/99 = 4 %); a CE teacher (models/mini100.py, 76.7 % top-1) gives each sibling 14.4x the
probability of each non-sibling class at tau 1. Some coarse templates are close to each other
(coarse 6, the digit 6, and coarse 13, a random curve, at 0.14, below the mean sibling
distance 0.33): as in CIFAR-100, the hierarchy is not the only similarity.
Inputs (N, 1, 40) float32; labels 0..99 (fine); `bundle.coarse_of_fine[f] = f // 5`.
Train augmentation as `mnist1d`: circular shift in [-max_shift, max_shift], then Gaussian
noise `noise_sigma`. A validation split instead of the test set: `build_dataset(...,
validation=N)` (data/core.py).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from common import UserError
from data.augment import ShiftNoise
from data.core import DATASETS, DataBundle
from data.offline import load_or_generate, mnist1d_generate
from data.splits import ArraySplit

NUM_COARSE, FINE_PER_COARSE = 20, 5
NUM_CLASSES = NUM_COARSE * FINE_PER_COARSE
TEMPLATE_STD = 1.0 / 6.0          # the digit templates' std
TEMPLATE_RECIPE = "hier-v1"       # bump when the construction above changes (enters the cache key)


def coarse_of_fine() -> tuple[int, ...]:
    """Fine class f -> coarse class f // 5."""
    return tuple(f // FINE_PER_COARSE for f in range(NUM_CLASSES))


def _to_std(x: np.ndarray) -> np.ndarray:
    return x * (TEMPLATE_STD / x.std(axis=-1, keepdims=True))


def hier_templates(sigma: float = 0.4, seed: int = 0) -> dict[str, np.ndarray]:
    """The templates dict for mnist1d's make_dataset: x (100, 12), t (12,), y (100,),
    plus `coarse` (20, 12), the coarse templates (see the module docstring)."""
    from mnist1d.data import get_templates

    digits = get_templates()
    rng = np.random.default_rng(seed)
    s = np.linspace(0.0, 1.0, digits["x"].shape[1])
    k4 = np.arange(1, 5)
    a = rng.standard_normal((NUM_COARSE - 10, 4)) / k4
    curves = _to_std(a @ np.sin(np.pi * k4[:, None] * s[None, :]))
    coarse = np.concatenate([digits["x"], curves])                               # (20, 12)
    k5 = np.arange(1, 6)
    b = rng.standard_normal((NUM_COARSE, FINE_PER_COARSE, 5)) / np.sqrt(k5)
    p = _to_std(b @ np.sin(np.pi * k5[:, None] * s[None, :]))                     # (20, 5, 12)
    fine = coarse[:, None, :] + sigma * p
    fine = _to_std(fine - fine[..., :1])
    return {"x": fine.reshape(NUM_CLASSES, -1), "t": np.asarray(digits["t"], np.float64),
            "y": np.arange(NUM_CLASSES), "coarse": coarse}


def hier_args(num_samples: int, num_test: int, generator_seed: int) -> dict:
    """mnist1d's default generator arguments (no url) with our sample counts and seed."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)
    n_train = num_samples - num_test
    split = n_train / num_samples
    if int(num_samples * split) != n_train:        # make_dataset cuts at int(N * train_split)
        split = (n_train + 0.5) / num_samples
    args.update({"num_samples": num_samples, "train_split": split, "seed": generator_seed})
    return args


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or \
            (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise UserError(f"mnist1d_hier {name} must be an integer {bound}, got {value!r}")
    return int(value)


def load_hier_arrays(root: Path, sigma: float = 0.4, num_samples: int = 14000, num_test: int = 6000,
                     template_seed: int = 0, generator_seed: int = 42) -> tuple[dict[str, np.ndarray], dict]:
    """Generated arrays and meta, cached under root/mnist1d_hier/ keyed by the generator
    arguments, the templates' sha256 and the package version (about 4 s to generate)."""
    from importlib.metadata import version

    templates = hier_templates(sigma, template_seed)
    args = hier_args(num_samples, num_test, generator_seed)
    pkg = version("mnist1d")
    digest = hashlib.sha256(np.ascontiguousarray(templates["x"], np.float64).tobytes()).hexdigest()
    key = {"args": args, "mnist1d": pkg, "templates_sha256": digest, "recipe": TEMPLATE_RECIPE,
           "sigma": sigma, "template_seed": template_seed}
    template = {k: templates[k] for k in ("x", "t", "y")}
    return load_or_generate(root, "mnist1d_hier", key, lambda: mnist1d_generate(args, template),
                            meta={"generator_args": args, "mnist1d_version": pkg, "templates_sha256": digest})


@DATASETS.register("mnist1d_hier")
def mnist1d_hier(root: Path, download: bool = False, sigma: float = 0.4, num_train: int | None = None,
                 augment: bool = True, max_shift: int = 4, noise_sigma: float = 0.1, num_samples: int = 14000,
                 num_test: int = 6000, template_seed: int = 0, generator_seed: int = 42) -> DataBundle:
    """MNIST-1D with 100 classes in 20 coarse x 5 fine (module docstring): train on the
    first `num_train` of the 8000 generated training signals (None = all), test on all 6000.
    `sigma`: fine-perturbation scale (> 0); num_samples (a multiple of 100: equal classes)
    and num_test change the generated counts (small values make quick tests).
    `download` is ignored: the data are generated."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma <= 10:
        raise UserError(f"mnist1d_hier sigma must be a number in (0, 10], got {sigma!r}")
    num_samples = _check_int("num_samples", num_samples, 2 * NUM_CLASSES)
    if num_samples % NUM_CLASSES:
        raise UserError(f"mnist1d_hier num_samples must be a multiple of {NUM_CLASSES} (equal classes), "
                        f"got {num_samples}")
    num_test = _check_int("num_test", num_test, 1, num_samples - 1)
    template_seed = _check_int("template_seed", template_seed, 0)
    generator_seed = _check_int("generator_seed", generator_seed, 0, 2 ** 32 - 1)
    arrays, meta = load_hier_arrays(root, float(sigma), num_samples, num_test, template_seed, generator_seed)
    n_all = len(arrays["y"])
    if num_train is None:
        num_train = n_all
    num_train = _check_int("num_train", num_train, 1, n_all)
    x = torch.from_numpy(arrays["x"][:num_train]).unsqueeze(1)
    y = torch.from_numpy(arrays["y"][:num_train])
    x_test = torch.from_numpy(arrays["x_test"]).unsqueeze(1)
    y_test = torch.from_numpy(arrays["y_test"])
    aug = ShiftNoise(max_shift, noise_sigma, noise=noise_sigma > 0) if augment else None
    info = {"source": "mnist1d.data.make_dataset with 100 hierarchical templates (data/hier.py; generated "
                      "in memory, cached)", **meta,
            "templates": {"recipe": TEMPLATE_RECIPE, "sigma": float(sigma), "template_seed": template_seed,
                          "coarse": "10 digit templates + 10 random sine curves", "fine_per_coarse": FINE_PER_COARSE},
            "hierarchy": f"{NUM_COARSE} coarse x {FINE_PER_COARSE} fine, coarse = fine // {FINE_PER_COARSE}",
            "counts": {"train": len(y), "test": len(y_test), "train_available": n_all},
            "augment": repr(aug), "normalisation": "none (generator output has mean 0, std 1)"}
    return DataBundle("mnist1d_hier", ArraySplit(x, y, aug), ArraySplit(x_test, y_test), num_classes=NUM_CLASSES,
                      in_channels=1, input_shape=(1, x.shape[-1]), info=info, coarse_of_fine=coarse_of_fine())
