"""Check run configs before anything is created or trained.

    from engine.validate import validate_configs
    validate_configs(configs)          # raises UserError (one line) for the first bad config

Checks each config's fields (experiment tag, recipe, loss and its hyperparameters, label
noise), builds its data set once per distinct (dataset, options) and each distinct model on a
two-sample dummy batch of the data's input shape (no training), and checks its teachers: each
is planned in the same list or a finished, intact run of the store, trained on data with the
same classes and input shape, and, when both are noisy, on the same label corruption.
"""
from __future__ import annotations

import inspect
import json

import torch

from common import UserError
from engine.config import LabelNoise, RunConfig, check_experiment
from engine.recipes import Recipe, validate as validate_recipe


def validate_configs(configs, data_root=None, download: bool = False) -> None:
    """Raise UserError with one line for the first bad config of `configs` (see the module docstring)."""
    Checker(data_root, download).check_all(list(configs))


class Checker:
    """validate_configs with its caches kept: data sets and model checks are done once each;
    `bundle` hands the built data set on to the trainer."""

    def __init__(self, data_root=None, download: bool = False):
        self.data_root, self.download = data_root, download
        self._bundles: dict = {}
        self._models: set = set()

    def check_all(self, configs: list[RunConfig]) -> None:
        planned = {c.run_id: c for c in configs}
        for c in configs:
            try:
                self.check(c, planned)
            except UserError as e:
                if len(configs) == 1:
                    raise
                raise UserError(f"run {c.slug}: {e}") from e

    def check(self, c: RunConfig, planned: dict | None = None) -> None:
        check_experiment(c.experiment)
        _recipe(c.recipe)
        from losses import build_loss

        build_loss(c.loss, **c.loss_hparams)
        if c.loss != "ce" and not c.teachers:
            raise UserError(f"loss '{c.loss}' needs a teacher (--teacher); without one only 'ce' trains")
        if c.ensemble not in ("mean", "sum"):
            raise UserError(f"ensemble must be 'mean' or 'sum', got '{c.ensemble}'")
        if not isinstance(c.label_noise, LabelNoise):
            raise UserError(f"label_noise must be a LabelNoise, got {c.label_noise!r}")
        bundle = self.bundle(c.dataset, c.dataset_options)
        self.check_model(c.model, c.model_options, bundle)
        for t in c.teachers:
            self.check_teacher(c, t, bundle, planned or {})

    # ------------------------------------------------------------------ data
    def bundle(self, dataset: str, options: dict):
        """The data set, built once per (name, options)."""
        key = (dataset, json.dumps(options, sort_keys=True, default=str))
        if key not in self._bundles:
            from data import DATASETS, build_dataset

            check_option_types(DATASETS.get(dataset), options, f"data set '{dataset}'")
            try:
                self._bundles[key] = build_dataset(dataset, root=self.data_root, download=self.download, **options)
            except UserError:
                raise
            except (TypeError, ValueError) as e:
                raise UserError(f"data set '{dataset}' rejects its options {options}: {_first_line(e)}") from e
        return self._bundles[key]

    # ------------------------------------------------------------------ models
    def check_model(self, name: str, options: dict, bundle) -> None:
        """The model builds with these options and maps a dummy batch of the data's input shape
        to (batch, classes) logits."""
        key = (name, json.dumps(options, sort_keys=True, default=str), bundle.num_classes, bundle.in_channels,
               tuple(bundle.input_shape))
        if key in self._models:
            return
        from models import MODELS, build_model

        check_option_types(MODELS.get(name), options, f"model '{name}'")
        try:
            model = build_model(name, num_classes=bundle.num_classes, in_channels=bundle.in_channels, **options)
        except UserError:
            raise
        except (TypeError, ValueError) as e:
            raise UserError(f"model '{name}' rejects its options {options}: {_first_line(e)}") from e
        shape = tuple(bundle.input_shape)
        try:
            with torch.no_grad():
                logits = model.eval()(torch.zeros(2, *shape)).logits
        except Exception as e:  # noqa: BLE001  any layer may refuse the shape
            kind = {2: "1-D signals (channels, length)", 3: "images (channels, height, width)"}.get(len(shape), "inputs")
            raise UserError(f"model '{name}' does not fit {bundle.name}'s {kind} of shape {list(shape)}: "
                            f"{_first_line(e)}") from e
        if tuple(logits.shape) != (2, bundle.num_classes):
            raise UserError(f"model '{name}' gives logits of shape {list(logits.shape[1:])} for "
                            f"{bundle.num_classes}-class {bundle.name}")
        self._models.add(key)

    # ------------------------------------------------------------------ teachers
    def check_teacher(self, student: RunConfig, run_id: str, bundle, planned: dict) -> None:
        """The teacher exists (planned or finished in the store) and was trained on data of the same
        classes and input shape (so its model fits this data too) and the same label corruption.
        A planned teacher's own mistakes are reported by its own check, not by its students'."""
        if run_id in planned:
            teacher = planned[run_id]
            try:
                tb = self.bundle(teacher.dataset, teacher.dataset_options)
            except UserError:
                return
        else:
            teacher = _stored_teacher(run_id)
            tb = self.bundle(teacher.dataset, teacher.dataset_options)
        if (tb.num_classes, tuple(tb.input_shape)) != (bundle.num_classes, tuple(bundle.input_shape)):
            raise UserError(f"teacher {run_id} was trained on {tb.num_classes}-class inputs of shape "
                            f"{list(tb.input_shape)}; this run's data has {bundle.num_classes} classes, "
                            f"shape {list(bundle.input_shape)}")
        mine, theirs = student.label_noise, teacher.label_noise
        if mine.tag != "clean" and theirs.tag != "clean" and mine != theirs:
            raise UserError(f"teacher {run_id} was trained on another label corruption ({_noise(theirs)}) than "
                            f"this run ({_noise(mine)}): both must see the same noisy labels")


def _stored_teacher(run_id: str) -> RunConfig:
    """A teacher that is not planned: a finished, intact run of the store."""
    from engine.rundir import RunLock, store_command
    from engine.teachers import teacher_rundir

    rd = teacher_rundir(run_id)
    if not rd.finished:
        holder = RunLock(rd.path).held_by()
        if holder:
            raise UserError(f"teacher run {run_id} is being trained by {holder}; wait for it to end")
        raise UserError(f"teacher run {rd.path} is not finished; finish it: {store_command(run_id, force=False)}")
    rd.verify()
    return rd.config


def _noise(n: LabelNoise) -> str:
    return f"{n.kind} {n.rate:g}, noise seed {n.seed}"


def _recipe(d: dict) -> Recipe:
    try:
        r = Recipe(**{**d, "milestones": tuple(d.get("milestones", ()))})
    except TypeError as e:
        raise UserError(f"bad recipe {d}: {_first_line(e)}") from e
    return validate_recipe(r)


def check_option_types(factory, options: dict, what: str) -> None:
    """Options must have the type of the factory's default (int, float, bool, str, list): a
    string where an int belongs (num_train=abc) is one clear line, not a traceback later."""
    from common.registry import check_kwargs

    check_kwargs(factory, options, what)
    params = inspect.signature(factory).parameters
    for key, value in options.items():
        default = params[key].default if key in params else inspect.Parameter.empty
        want = _kind(default)
        if want and not _fits(value, want):
            raise UserError(f"{what} option {key} must be {want}, got {value!r}")


def _kind(default) -> str | None:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, (list, tuple)):
        return "a list"
    return None            # None or no default: anything goes


def _fits(value, want: str) -> bool:
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {"true or false": isinstance(value, bool), "an integer": isinstance(value, int) and not isinstance(value, bool),
            "a number": is_num, "a string": isinstance(value, str),
            "a list": isinstance(value, (list, tuple))}[want]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
