"""What one run is: a frozen, JSON-able config whose hash is the run id.

Only fields that change what is computed enter the hash (not the device, not
verbosity), so re-running the same config finds the same run directory and resumes
or skips it instead of training again.
"""
import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field

from common import UserError
from engine.recipes import Recipe, get_recipe


@dataclass(frozen=True)
class LabelNoise:
    kind: str = "none"     # "none", "symmetric", "asymmetric"
    rate: float = 0.0      # fraction of training labels flipped, in [0, 1)
    seed: int = 0          # corruption seed, independent of the training seed

    def __post_init__(self):
        if self.kind not in ("none", "symmetric", "asymmetric"):
            raise UserError(f"label noise kind must be none, symmetric or asymmetric, got '{self.kind}'")
        if not 0.0 <= self.rate < 1.0:
            raise UserError(f"label noise rate must be in [0, 1), got {self.rate}")
        if self.kind == "none" and self.rate != 0.0:
            raise UserError("label noise kind 'none' takes rate 0")

    @property
    def tag(self) -> str:
        return "clean" if self.kind == "none" or self.rate == 0 else f"{self.kind[:3]}{self.rate:g}"


@dataclass(frozen=True)
class RunConfig:
    experiment: str                      # a tag: which experiment first asked for the run (not in the run id)
    dataset: str                         # a data.DATASETS name
    model: str                           # a models.MODELS name
    loss: str = "ce"                     # a losses.LOSSES name; "ce" with no teachers = a teacher run
    loss_hparams: dict = field(default_factory=dict)
    teachers: tuple = ()                 # run ids of teacher runs (several = an ensemble)
    ensemble: str = "mean"               # "mean" of teacher logits, or "sum" (paper 1 official option)
    recipe: dict = field(default_factory=dict)   # a resolved Recipe as a dict
    seed: int = 0                        # model init and data order
    dataset_options: dict = field(default_factory=dict)
    model_options: dict = field(default_factory=dict)
    label_noise: LabelNoise = LabelNoise()
    teacher_cache: bool = False          # look teacher logits up by (image, view) instead of a forward pass
    method: str = ""                     # a tag: the method's one name (reproduce/methods.py; not in the run id)
    imported: dict = field(default_factory=dict)   # released weights instead of training (engine/imported.py):
    #   {"format", "sha256", "file"}; the file's path is a tag, the bytes (sha256) enter the run id.
    #   Empty for trained runs, and then left out of config.json and the hash (their run ids did not change)
    plugin: str = ""                     # sha256 of the researcher's file that registers `loss` (losses/plugins.py):
    #   in the run id, so an edited file trains anew; empty for built-in losses, then left out as `imported` is

    @property
    def is_teacher(self) -> bool:
        return not self.teachers

    def recipe_obj(self) -> Recipe:
        return Recipe(**{**self.recipe, "milestones": tuple(self.recipe.get("milestones", ()))})

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["teachers"] = list(self.teachers)
        for key in ("imported", "plugin"):
            if not d[key]:
                d.pop(key)
        return d

    @staticmethod
    def from_dict(d: dict) -> "RunConfig":
        d = dict(d)
        d["label_noise"] = LabelNoise(**d.get("label_noise", {}))
        d["teachers"] = tuple(d.get("teachers", ()))
        return RunConfig(**d)

    def semantic_dict(self) -> dict:
        """The fields that decide what is computed: everything but the tags."""
        d = self.to_dict()
        d.pop("experiment")      # a tag: the same config asked for by two scripts is one run
        d.pop("teacher_cache")   # a cache gives the same logits; tested for equality
        d.pop("method")          # a name for the objective the other fields already define
        if "imported" in d:
            d["imported"] = {k: v for k, v in d["imported"].items() if k != "file"}   # where it was read: a tag
        return d

    @property
    def run_id(self) -> str:
        blob = json.dumps(_jsonable(self.semantic_dict()), sort_keys=True)
        digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
        return f"{self.slug}-{digest}"

    @property
    def slug(self) -> str:
        if self.imported:
            return f"{self.model}-{self.imported['format']}-s{self.seed}"
        parts = [self.model, self.loss]
        for key in ("tau", "alpha", "beta"):
            if key in self.loss_hparams:
                parts.append(f"{key}{_short(self.loss_hparams[key])}")
        if self.label_noise.tag != "clean":
            parts.append(self.label_noise.tag)
        parts.append(f"s{self.seed}")
        return "-".join(parts)

    @property
    def display_name(self) -> str:
        """The slug with every other loss hyperparameter too (scale, law, T2, ...), so that the
        progress lines of two runs in one group are told apart; not part of the run id."""
        extra = [f"{k}{_short(v)}" for k, v in sorted(self.loss_hparams.items())
                 if k not in ("tau", "alpha", "beta") and not isinstance(v, (dict, list, tuple))]
        if not extra:
            return self.slug
        head, seed = self.slug.rsplit("-", 1)
        return "-".join([head, *extra, seed])


def _short(v) -> str:
    return "inf" if isinstance(v, float) and math.isinf(v) else f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _jsonable(x):
    """Floats like inf become strings so the JSON (and the hash) is standard and stable."""
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def from_jsonable(x):
    if x in ("inf", "-inf", "nan"):
        return float(x)
    if isinstance(x, dict):
        return {k: from_jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [from_jsonable(v) for v in x]
    return x


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_experiment(name) -> str:
    """The experiment tag is a plain name (letters, digits, _ . -): never a path."""
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name) or set(name) <= {"."}:
        raise UserError(f"experiment must be a plain name (letters, digits, _ . -), got {name!r}")
    return name


def make_config(experiment, dataset, model, *, loss="ce", loss_hparams=None, teachers=(), ensemble="mean",
                recipe="smoke", recipe_overrides=None, seed=0, dataset_options=None, model_options=None,
                label_noise=None, teacher_cache=False, method: str = "") -> RunConfig:
    """Build a RunConfig from names; resolves and validates the recipe."""
    check_experiment(experiment)
    if ensemble not in ("mean", "sum"):
        raise UserError(f"ensemble must be 'mean' or 'sum', got '{ensemble}'")
    from losses import build_loss

    build_loss(loss, **(loss_hparams or {}))   # fail on a bad name or hyperparameter before any training
    if loss != "ce" and not teachers:
        raise UserError(f"loss '{loss}' needs a teacher (--teacher); without one only 'ce' trains")
    resolved = get_recipe(recipe, **(recipe_overrides or {})) if isinstance(recipe, str) else recipe
    return RunConfig(
        experiment=experiment, dataset=dataset, model=model, loss=loss,
        loss_hparams=dict(loss_hparams or {}), teachers=tuple(teachers), ensemble=ensemble,
        recipe=resolved.to_dict(),
        seed=int(seed), dataset_options=dict(dataset_options or {}), model_options=dict(model_options or {}),
        label_noise=label_noise or LabelNoise(), teacher_cache=teacher_cache, method=method)
