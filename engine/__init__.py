"""One training engine for every paper: teachers, students, ensembles, noisy teachers."""
from engine.config import LabelNoise, RunConfig, make_config
from engine.recipes import Recipe, get_recipe, list_recipes
from engine.rundir import RunDir, results_root
from engine.teachers import teacher_config
from engine.trainer import TrainingDiverged, train, train_group
from engine.validate import validate_configs

__all__ = ["LabelNoise", "Recipe", "RunConfig", "RunDir", "TrainingDiverged", "get_recipe", "list_recipes",
           "make_config", "results_root", "teacher_config", "train", "train_group", "validate_configs"]
