"""The scales every experiment runs at, through the same code path.

A profile is a data set and its recipes at one scale; which models play which role is each
paper's business (its script maps its tables onto a profile). Shared scales:

- `mini`:  offline mnist1d, 1000 training signals, 10 classes: minutes on 2 CPU cores.
- `mini100`: offline mnist1d_hier, 8000 training signals, 100 classes in 20 coarse x 5 fine
  (data/hier.py), where capacity gaps and class similarity matter; recipes searched on a
  validation split (reproduce/many_class.py).
- `smoke`: seconds, for tests: synthetic data, 2 epochs.

Each paper adds its own `paper` profile (its data set, models and schedule, for a GPU with the
data), since the papers do not share one setting.
"""
from dataclasses import dataclass, field

from common import UserError


@dataclass(frozen=True)
class Profile:
    name: str
    dataset: str
    teacher_recipe: str
    student_recipe: str
    seeds: tuple                    # training seeds
    dataset_options: dict = field(default_factory=dict)
    model_options: dict = field(default_factory=dict)      # model name -> constructor options
    recipe_overrides: dict = field(default_factory=dict)   # applied to teacher and student recipes
    device: str = "cpu"             # what it is sized for: "cpu" (costs in CPU-minutes) or "gpu" (GPU-hours)
    # Teachers nested in seeds: student seed s distils teacher seed s (each teacher trained once per
    # seed and shared by every method of that seed), so a paired interval holds the teacher's
    # variance too. Off (one teacher, the first seed) only where the papers do so: the paper profiles.
    nested_teachers: bool = True
    note: str = ""


MINI = Profile(
    name="mini", dataset="mnist1d", teacher_recipe="mini_teacher", student_recipe="mini_student",
    seeds=(0, 1, 2, 3, 4),
    dataset_options={"num_train": 1000},
    note="mnist1d, 1000 training samples, shift+noise augmentation; 88.8k-param CNN -> 6.5k-param CNN")
MINI100 = Profile(
    name="mini100", dataset="mnist1d_hier", teacher_recipe="mini100_teacher", student_recipe="mini100_student",
    seeds=(0, 1, 2, 3, 4),
    note="mnist1d_hier: 100 classes (20 coarse x 5 fine), 8000 training signals, shift+noise augmentation; "
         "100k-param CNN teacher; students: plain CNN 13.0k, residual net 10.6k")
SMOKE = Profile(
    name="smoke", dataset="synthetic", teacher_recipe="smoke", student_recipe="smoke", seeds=(0,),
    dataset_options={"num_train": 192, "num_test": 96, "num_classes": 4, "shape": [1, 24]},
    model_options={"cnn1d_student": {"length": 24}},
    note="synthetic signals, 2 epochs: tests only, numbers mean nothing")

SHARED = {p.name: p for p in (MINI, MINI100, SMOKE)}


def get_profile(name: str, extra: dict | None = None) -> Profile:
    """A shared profile or one of `extra` (a paper's own, e.g. its `paper` profile)."""
    known = {**SHARED, **(extra or {})}
    if name not in known:
        raise UserError(f"unknown profile '{name}'; known: {', '.join(known)}")
    return known[name]
