"""The scales every experiment runs at, through the same code path.

- `paper`: the paper's data set, models, epochs and schedule (a GPU and the real data).
- `mini`:  offline mnist1d (shared/mini-notes.md, re-measured with this engine), minutes on 2 CPU cores.
- `smoke`: seconds, for tests: synthetic data, 2 epochs.

A profile names the data set, the teacher/student models and recipes, and the seeds;
each paper's script maps its experiments onto one.
"""
from dataclasses import dataclass, field

from common import UserError


@dataclass(frozen=True)
class Profile:
    name: str
    dataset: str
    teacher: str                    # the big model
    student: str                    # the small model
    middle: str                     # a middle-size model (sequential distillation)
    teacher_recipe: str
    student_recipe: str
    seeds: tuple                    # training seeds; each student seed pairs with teacher seed 0
    dataset_options: dict = field(default_factory=dict)
    student_options: dict = field(default_factory=dict)
    recipe_overrides: dict = field(default_factory=dict)   # applied to teacher and student recipes
    extra_students: tuple = ()      # other student models (paper 1's LMSE-vs-KL table)
    note: str = ""


PROFILES = {
    "paper": Profile(
        name="paper", dataset="cifar100", teacher="wrn_28_4", student="wrn_16_2", middle="wrn_16_4",
        teacher_recipe="kl_vs_mse_cifar", student_recipe="kl_vs_mse_cifar", seeds=(9999,),
        dataset_options={"norm": "kd_data"}, extra_students=("wrn_16_4", "wrn_28_2"),
        note="paper 1 official setting: CIFAR-100, WRN-28-4 -> WRN-16-2, 200 epochs, seed 9999"),
    "mini": Profile(
        name="mini", dataset="mnist1d", teacher="cnn1d_teacher", student="cnn1d_student", middle="cnn1d_medium",
        teacher_recipe="mini_teacher", student_recipe="mini_student", seeds=(0, 1, 2),
        dataset_options={"num_train": 1000},
        note="mnist1d, 1000 training samples, shift+noise augmentation; 88.8k-param CNN -> 6.5k-param CNN"),
    "smoke": Profile(
        name="smoke", dataset="synthetic", teacher="cnn1d_teacher", student="cnn1d_student", middle="cnn1d_medium",
        teacher_recipe="smoke", student_recipe="smoke", seeds=(0,),
        dataset_options={"num_train": 192, "num_test": 96, "num_classes": 4, "shape": [1, 24]},
        student_options={"length": 24},
        note="synthetic signals, 2 epochs: tests only, numbers mean nothing"),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise UserError(f"unknown profile '{name}'; known: {', '.join(PROFILES)}")
    return PROFILES[name]
