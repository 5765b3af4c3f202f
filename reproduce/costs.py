"""What a group of runs costs, for `--dry-run` listings and for scheduling the longest first.

The cost of a config follows from its data set, models and epochs alone, so every paper and
profile is costed by the same rules:

- CPU data sets (the mini profiles): seconds per epoch per model, MEASURED on this project's
  2-core machine (one process of one thread per core, torch 2.14.1, fp32), including the test
  evaluation of the mini recipes; the teacher forward on the training batches is paid once per
  group (all students of a group share it).
- GPU data sets (CIFAR, TinyImageNet, STL10, ImageNet): images per second on one GPU. Measured
  ones come from results/bench/gpu_throughput.json (written by `make gpu-check` on a GPU);
  where none exists, ASSUMED A100-class throughputs (fp32/TF32), labelled as such; evaluation
  and the teacher forward at 3x the training rate.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from engine.rundir import results_root

# Seconds per epoch on this project's 2-core VM, re-measured 2026-12-03 with two workers busy (as
# sweeps and the demo run); the VM's speed drifts from day to day, so read estimates as +- 50 %.
# Measured that day (results/bench/demo.md, a fresh-clone `make demo`): a mnist1d_hier student
# (cnn1d_s100_shallow) 1.16 s per epoch in a group, the cnn1d_t100 teacher forward 0.77 s per
# group-epoch; mnist1d: paper 1's group of 5 cnn1d_student runs 0.58 s per group-epoch, the
# cnn1d_student CE run 0.097 s. That was 2.47x (mnist1d_hier) and 1.45x (mnist1d) the entries
# measured on 2026-11-29 / 2026-12-01; the entries not re-measured are those earlier ones scaled by
# their data set's ratio. Train time includes the recipe's test evaluations. Keys: (dataset, model).
_MNIST1D, _HIER = 1.45, 2.47
CPU_EPOCH_S = {
    ("mnist1d", "cnn1d_teacher"): 1.0 * _MNIST1D, ("mnist1d", "cnn1d_medium"): 0.22 * _MNIST1D,
    ("mnist1d", "cnn1d_student"): 0.097,
    ("mnist1d_hier", "cnn1d_t100"): 1.45 * _HIER, ("mnist1d_hier", "cnn1d_m100"): 0.52 * _HIER,
    ("mnist1d_hier", "cnn1d_s100_shallow"): 1.16, ("mnist1d_hier", "cnn1d_s100_thin"): 0.44 * _HIER,
    ("mnist1d_hier", "cnn1d_s100_wide"): 0.78 * _HIER, ("mnist1d_hier", "res1d_s100"): 0.47 * _HIER,
}
CPU_TEACHER_FORWARD_S = {
    ("mnist1d", "cnn1d_teacher"): 0.08 * _MNIST1D, ("mnist1d", "cnn1d_medium"): 0.04 * _MNIST1D,
    ("mnist1d", "cnn1d_student"): 0.01 * _MNIST1D,
    ("mnist1d_hier", "cnn1d_t100"): 0.77, ("mnist1d_hier", "cnn1d_m100"): 0.11 * _HIER,
    ("mnist1d_hier", "cnn1d_s100_shallow"): 0.06 * _HIER, ("mnist1d_hier", "cnn1d_s100_thin"): 0.05 * _HIER,
    ("mnist1d_hier", "res1d_s100"): 0.08 * _HIER,
}
CPU_DEFAULT_EPOCH_S, CPU_DEFAULT_FORWARD_S = 0.1, 0.05

# ASSUMED training throughput (images/s) on one A100-class GPU, batch 128 (CIFAR) or 256 (ImageNet).
ASSUMED_TRAIN_IMG_S = {"wrn_28_4": 4000, "wrn_16_4": 6000, "wrn_28_2": 7000, "wrn_16_2": 12000}
ASSUMED_DEFAULT_IMG_S = {"cifar": 5000, "imagenet": 1000}
GPU_SPLITS = {  # (training images, test images, input kind)
    "cifar100": (50_000, 10_000, "cifar"), "cifar10": (50_000, 10_000, "cifar"),
    "stl10": (5_000, 8_000, "imagenet"), "tinyimagenet": (100_000, 10_000, "imagenet"),
    "imagenet": (1_281_167, 50_000, "imagenet"),
}
SMOKE_RUN_S = 0.5
MEASURED_FILE = Path("bench") / "gpu_throughput.json"


@lru_cache(maxsize=4)
def _measured(path: str) -> dict:
    p = Path(path)
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def measured_throughputs() -> dict:
    """results/bench/gpu_throughput.json, or {} when none was measured."""
    return _measured(str(results_root() / MEASURED_FILE))


def kind(dataset: str) -> str:
    """'gpu' for the papers' image data sets, 'smoke' for the synthetic one, else 'cpu'."""
    return "gpu" if dataset in GPU_SPLITS else "smoke" if dataset == "synthetic" else "cpu"


def train_img_s(model: str, dataset: str) -> tuple[float, bool]:
    """(training images/s of `model`, measured?)."""
    m = measured_throughputs().get("models", {}).get(model)
    if m and m.get("input") == GPU_SPLITS[dataset][2] and m.get("train_img_s"):
        return float(m["train_img_s"]), True
    return float(ASSUMED_TRAIN_IMG_S.get(model, ASSUMED_DEFAULT_IMG_S[GPU_SPLITS[dataset][2]])), False


def group_cost_s(group) -> float:
    """Estimated seconds to train a group of runs that share one data stream (imported teachers cost nothing)."""
    group = [c for c in group if not c.imported]
    if not group:
        return 0.0
    first = group[0]
    epochs, dataset = first.recipe["epochs"], first.dataset
    teachers = [t.split("-")[0] for t in first.teachers]     # a run id starts with its model name
    k = kind(dataset)
    if k == "smoke":
        return SMOKE_RUN_S * len(group)
    if k == "gpu":
        n_train, n_test, _ = GPU_SPLITS[dataset]
        per_epoch = sum(n_train / train_img_s(c.model, dataset)[0] + n_test / (3 * train_img_s(c.model, dataset)[0])
                        for c in group)
        per_epoch += sum(n_train / (3 * train_img_s(m, dataset)[0]) for m in teachers)
    else:
        per_epoch = sum(CPU_EPOCH_S.get((dataset, c.model), CPU_DEFAULT_EPOCH_S) for c in group)
        per_epoch += sum(CPU_TEACHER_FORWARD_S.get((dataset, m), CPU_DEFAULT_FORWARD_S) for m in teachers)
    return epochs * per_epoch


def note(profile) -> str:
    """How the costs of a profile's listing were obtained (one line)."""
    if profile.device == "gpu":
        data = measured_throughputs()
        src = (f"measured on {data.get('device')} ({data.get('date')}) where listed in {MEASURED_FILE}, else "
               if data else "")
        return ("GPU-hours from training throughputs on one GPU: " + src + "ASSUMED A100-class (images/s: "
                + ", ".join(f"{m} {v}" for m, v in ASSUMED_TRAIN_IMG_S.items())
                + ", others 5000 CIFAR / 1000 ImageNet); eval and teacher forward at 3x")
    if profile.dataset == "synthetic":
        return "smoke: seconds"
    listed = {m: v for (d, m), v in CPU_EPOCH_S.items() if d == profile.dataset}
    forward = {m: v for (d, m), v in CPU_TEACHER_FORWARD_S.items() if d == profile.dataset}
    return ("CPU-minutes from per-epoch times measured on this project's 2-core VM on 2026-12-03, two workers "
            "busy, some scaled from earlier measurements (reproduce/costs.py; the VM's speed drifts: +- 50 %) "
            "(s/epoch: " + ", ".join(f"{m} {v:.2g}" for m, v in listed.items()) + "; teacher forward per group "
            + ", ".join(f"{m} {v:.2g}" for m, v in forward.items()) + ")")
