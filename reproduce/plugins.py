"""A researcher's own loss in the comparison: `--plugin FILE --method NAME[:key=value,...]`.

    python -m reproduce.compare table --plugin my_loss.py --method l1:ce_weight=0.5,p=2

FILE registers a `DistillLoss` with `@LOSSES.register("l1")` (losses/plugins.py imports it, and
exports it to the training workers). Each `--method` adds one row to the comparison: the loss on
every pair and seed, with the pair's recipe and teachers, under the comparison's default protocol
(CE weight 1, KD weight 1, the pair's warm-up) unless the string says otherwise: the keys
`ce_weight`, `kd_weight` and `warmup` set the objective, every other key is a hyperparameter of the
loss (values read as int, float, bool or string). The file's sha256 enters the run id of its runs
(RunConfig.plugin), so editing the file trains them anew; runs of built-in losses are shared.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from common import UserError
from losses import LOSSES, build_loss, defaults as loss_defaults
from losses import plugins as loaded
from reproduce import methods
from reproduce.cli import parse_value

OBJECTIVE_KEYS = ("ce_weight", "kd_weight", "warmup")


@dataclass(frozen=True)
class ExtraMethod:
    """One --method: a registered loss under its own name, with its objective's weights."""
    name: str
    loss: str
    hparams: dict = field(default_factory=dict)
    ce_weight: float = methods.DEFAULT_CE_WEIGHT
    kd_weight: float = 1.0
    warmup: int | None = None          # None: the pair's warm-up
    plugin: str = ""                   # sha256 of the file that registers the loss ('' built-in)
    says: str = "the researcher's own loss (--method): no published claim"

    def objective(self, pair) -> methods.Objective:
        warmup = pair.warmup if self.warmup is None else self.warmup
        return methods.Objective(self.loss, dict(self.hparams), self.ce_weight, self.kd_weight, warmup)

    def config(self, runs, pair, seed: int, teacher):
        """The run of this method on `pair` at `seed` distilling `teacher` (Compare.run calls it)."""
        obj = self.objective(pair)
        c = runs.student(pair.student, self.loss, seed, teachers=teacher, hparams=obj.hparams, recipe=pair.recipe,
                         overrides=obj.overrides(), method=self.name)
        return dataclasses.replace(c, plugin=self.plugin) if self.plugin else c


def _value(text: str):
    return {"true": True, "false": False}.get(text.lower(), parse_value(text)) if text else text


def _number(spec: str, key: str, value, *, integer: bool = False, positive: bool = False):
    ok = (not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
          and math.isfinite(value) and (value > 0 if positive else value >= 0))
    if not ok:
        what = "an integer >= 0" if integer else "a finite number > 0" if positive else "a finite number >= 0"
        raise UserError(f"--method {spec}: {key} must be {what}, got {value!r}")
    return int(value) if integer else float(value)


def trial(loss) -> None:
    """One step on a tiny batch, as the engine calls a loss: a hyperparameter the constructor let
    through but the loss cannot use fails here, in one line, not in a worker after the teachers."""
    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(4, 5, generator=g, requires_grad=True), torch.randn(4, 5, generator=g)
    y = torch.arange(4)
    loss.set_progress(0.0)
    loss.observe_teacher(zt, y)
    value = loss(zs, zt, y)
    if not isinstance(value, torch.Tensor) or value.dim() != 0 or not torch.isfinite(value):
        raise UserError(f"the loss must return a finite scalar tensor, got {value!r} on a 4 x 5 batch")
    value.backward()


def parse_method(spec: str) -> ExtraMethod:
    """'name[:key=value,...]' -> ExtraMethod; the loss must be registered (load its plugin first)."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise UserError(f"--method takes NAME[:key=value,...], got '{spec}'")
    if name not in LOSSES:
        raise UserError(f"--method {spec}: no loss '{name}' is registered; give the file that registers it with "
                        f"--plugin FILE (built-in losses: {', '.join(LOSSES.names())})")
    options = {}
    for item in rest.split(",") if rest else ():
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"--method {spec}: '{item}' is not key=value")
        if key.strip() in options:
            raise UserError(f"--method {spec}: {key.strip()} given twice")
        options[key.strip()] = _value(value.strip())
    objective = {k: options.pop(k) for k in OBJECTIVE_KEYS if k in options}
    defaults = loss_defaults(name)
    hparams = {k: v for k, v in options.items() if k not in defaults or defaults[k] != v}  # run ids as the papers'
    try:
        trial(build_loss(name, **hparams))
    except Exception as e:                      # noqa: BLE001  a researcher's loss may raise anything
        what = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
        raise UserError(f"--method {spec}: {' '.join(what.split())}") from None
    out = ExtraMethod(name, name, hparams, plugin=loaded.source_sha256(name))
    if "ce_weight" in objective:
        out = dataclasses.replace(out, ce_weight=_number(spec, "ce_weight", objective["ce_weight"]))
    if "kd_weight" in objective:
        out = dataclasses.replace(out, kd_weight=_number(spec, "kd_weight", objective["kd_weight"], positive=True))
    if "warmup" in objective:
        out = dataclasses.replace(out, warmup=_number(spec, "warmup", objective["warmup"], integer=True))
    return out


def extra_methods(plugin_files, specs, taken) -> tuple:
    """Load the plugin files (exported to the workers), then parse each --method; `taken`: the
    comparison's own method names, which no extra method may shadow (compared case-insensitively)."""
    plugin_files, specs = list(plugin_files or ()), list(specs or ())
    registered = [name for f in plugin_files for name in loaded.load_file(f)]
    for f in plugin_files:
        loaded.export(f)
    if plugin_files and not specs:
        raise UserError(f"--plugin without --method adds nothing; the file(s) register {', '.join(registered)} "
                        "(add --method NAME)")
    out, seen = [], {n.lower(): n for n in [*taken, *methods.METHODS]}
    for spec in specs:
        m = parse_method(spec)
        if m.name in [x.name for x in out]:
            raise UserError(f"--method {spec}: '{m.name}' is given twice (one --method per loss)")
        if m.name.lower() in seen:
            raise UserError(f"--method {spec}: the name '{m.name}' is taken by the comparison's method "
                            f"'{seen[m.name.lower()]}'; register the loss under another name")
        seen[m.name.lower()] = m.name
        out.append(m)
    return tuple(out)


def add_args(parser) -> None:
    """The comparison's own flags (reproduce.compare passes them to `declare`)."""
    g = parser.add_argument_group("your own loss (docs: README, 'Your own loss in the comparison')")
    g.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="a Python file that registers losses with @LOSSES.register('name') (repeatable)")
    g.add_argument("--method", action="append", default=[], metavar="NAME[:key=value,...]",
                   help="add a registered loss to the comparison (repeatable); keys ce_weight, kd_weight, warmup set "
                        "its objective (default: CE 1, KD 1, the pair's warm-up), any other key is a loss "
                        "hyperparameter")
