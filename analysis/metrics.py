"""Metrics computed from a run's saved files, for table cells whose metric is not a summary
column: `metric="cluster_spread"`, `"feature_dim"`, `"agreement:<key>"` (a key of
engine.evaluate.agreement_metrics, against the outputs of the cell's `against` run),
`"last_fifth_gain"` (convergence, from metrics.jsonl), `"sibling_ratio"` (class hierarchy,
the cell's `args` give tau and coarse_of_fine), or one a paper's analysis module registers
with `@register`.

Each takes (run, against, **args) where `run` and `against` are `RunFiles` (lazy outputs.pt
and metrics.jsonl of one run; `against` may be None) and returns a float (NaN when it cannot
be computed), or text for `reduce="first"` cells.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

DERIVED: dict = {}


class RunFiles:
    """The saved files of one finished run, read on first use."""

    def __init__(self, path: Path | None):
        self.path = None if path is None else Path(path)
        self._outputs, self._metrics = None, None

    @property
    def outputs(self) -> dict | None:
        if self._outputs is None and self.path is not None and (self.path / "outputs.pt").exists():
            try:
                self._outputs = torch.load(self.path / "outputs.pt", map_location="cpu")
            except Exception as e:          # noqa: BLE001  torch raises several types for damaged files
                raise _damaged(self.path / "outputs.pt", e) from e
        return self._outputs

    @property
    def metrics(self) -> list[dict]:
        if self._metrics is None:
            f = None if self.path is None else self.path / "metrics.jsonl"
            lines = f.read_text().splitlines() if f is not None and f.exists() else []
            try:
                self._metrics = [json.loads(ln) for ln in lines if ln.strip()]
            except json.JSONDecodeError as e:   # a finished run's log is whole: a torn line is damage
                raise _damaged(f, e) from e
        return self._metrics


def _damaged(path: Path, e: Exception):
    """The one-line error for a damaged file of a finished run, naming the command that fixes it."""
    from common import UserError
    from engine.rundir import fix_for

    return UserError(f"corrupt {path} ({type(e).__name__}); {fix_for(path.parent)} "
                     "(python -m reproduce.store verify lists every damaged run)")


def register(name: str):
    def decorator(fn):
        DERIVED[name] = fn
        return fn

    return decorator


def is_derived(metric: str) -> bool:
    return metric in DERIVED or metric.split(":", 1)[0] in DERIVED


def compute(metric: str, run: RunFiles, against: RunFiles | None, args: dict | None = None):
    """The value of a derived `metric` for one run."""
    name, _, key = metric.partition(":")
    fn = DERIVED.get(metric) or DERIVED[name]
    return fn(run, against, **({"key": key} if key else {}), **(args or {}))


def cluster_spread(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean distance of a sample to its class centroid / mean distance between class centroids
    (lower = tighter, better separated class clusters; invariant to the feature scale)."""
    f, y = features.double(), labels[: len(features)]
    classes = y.unique()
    centroids = torch.stack([f[y == k].mean(0) for k in classes])
    index = {int(k): i for i, k in enumerate(classes)}
    within = (f - centroids[torch.tensor([index[int(k)] for k in y])]).norm(dim=1).mean()
    between = torch.pdist(centroids).mean()
    return (within / between).item()


def _outputs(run: RunFiles):
    return None if run is None else run.outputs


@register("cluster_spread")
def _cluster_spread(run, against=None) -> float:
    o = run.outputs
    return math.nan if o is None else cluster_spread(o["features"], o["labels"])


@register("feature_dim")
def _feature_dim(run, against=None) -> str:
    return str(run.outputs["features"].shape[1])


@register("agreement")
def _agreement(run, against, key: str) -> float:
    """An agreement metric of this run's test logits against another run's (e.g. a CE student
    against the teacher it never saw)."""
    from engine.evaluate import agreement_metrics

    o, a = _outputs(run), _outputs(against)
    if o is None or a is None:
        return math.nan
    return agreement_metrics(o["logits"].float(), a["logits"].float()).get(key, math.nan)


def _gain_over_last(run, share: float, key: str) -> float:
    """`key` at the last evaluated epoch minus at the first evaluated one at or after (1 - share) of
    the epochs (about 0 once the schedule has converged)."""
    rows = [r for r in run.metrics if key in r]
    if not rows:
        return math.nan
    epochs = rows[-1]["epoch"]
    start = next(r for r in rows if r["epoch"] >= (1 - share) * epochs)
    return rows[-1][key] - start[key]


@register("last_fifth_gain")
def _last_fifth_gain(run, against=None, key: str = "test_top1") -> float:
    """Accuracy gained over the last fifth of training."""
    return _gain_over_last(run, 0.2, key)


@register("last_tenth_gain")
def _last_tenth_gain(run, against=None, key: str = "test_top1") -> float:
    """Accuracy gained over the last tenth of training: still rising when clearly above 0."""
    return _gain_over_last(run, 0.1, key)


@register("generalization_gap")
def _generalization_gap(run, against=None) -> float:
    """Last-epoch train top-1 (running, on the augmented batches) minus test top-1, in points."""
    rows = [r for r in run.metrics if "test_top1" in r and "train_top1" in r]
    return math.nan if not rows else rows[-1]["train_top1"] - rows[-1]["test_top1"]


@register("class_margin")
def _class_margin(run, against=None) -> float:
    """Mean over test samples of the true class's logit minus the largest other logit."""
    o = run.outputs
    if o is None:
        return math.nan
    z, y = o["logits"].double(), o["labels"][: len(o["logits"])].long()
    true = z.gather(1, y[:, None]).squeeze(1)
    other = z.scatter(1, y[:, None], float("-inf")).max(1).values
    return (true - other).mean().item()


@register("fit")
def _fit(run, against=None, key: str = "train_top1") -> float:
    """A teacher's fit of its own training set, un-augmented (fit.json, written by engine/fit.py)."""
    f = run.path / "fit.json"
    return json.loads(f.read_text()).get(key, math.nan) if f.exists() else math.nan


def sibling_mass(logits: torch.Tensor, labels: torch.Tensor, coarse_of_fine, tau: float = 1.0) -> dict:
    """Teacher probability on the true class, on its siblings (the other fine classes of its
    coarse class) and on all other classes; per-class ratio sibling / non-sibling."""
    coarse = torch.as_tensor(coarse_of_fine)
    p = torch.softmax(logits.double() / tau, dim=1)
    same = coarse[None, :] == coarse[labels][:, None]                 # (N, C): sibling or self
    true = torch.nn.functional.one_hot(labels, p.shape[1]).bool()
    sib, non = same & ~true, ~same
    p_true = p[true].mean().item()
    p_sib, p_non = (p * sib).sum(1).mean().item(), (p * non).sum(1).mean().item()
    n_sib, n_non = sib.sum(1).double().mean().item(), non.sum(1).double().mean().item()
    return {"true": p_true, "siblings": p_sib, "others": p_non,
            "ratio": (p_sib / n_sib) / (p_non / n_non) if p_non > 0 else math.inf}


def _hierarchy(o: dict, coarse_of_fine):
    """The class hierarchy given by the cell, else the one the run saved with its outputs."""
    return coarse_of_fine if coarse_of_fine is not None else o.get("coarse_of_fine")


@register("sibling_ratio")
def _sibling_ratio(run, against=None, tau: float = 1.0, coarse_of_fine=None) -> float:
    """Probability per sibling class over probability per non-sibling class (1 = no hierarchy)."""
    o = run.outputs
    if o is None or _hierarchy(o, coarse_of_fine) is None:
        return math.nan
    return sibling_mass(o["logits"], o["labels"], _hierarchy(o, coarse_of_fine), tau)["ratio"]


@register("sibling_mass")
def _sibling_mass(run, against=None, key: str = "siblings", tau: float = 1.0, coarse_of_fine=None) -> float:
    o = run.outputs
    if o is None or _hierarchy(o, coarse_of_fine) is None:
        return math.nan
    return sibling_mass(o["logits"], o["labels"], _hierarchy(o, coarse_of_fine), tau)[key]


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE in %: sum over equal-width confidence bins of |accuracy - confidence| x bin share."""
    p = torch.softmax(logits.double(), dim=1)
    conf, pred = p.max(1)
    correct = (pred == labels).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    which = torch.bucketize(conf, edges[1:-1], right=True)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.double().mean().item() * abs(correct[inside].mean().item() - conf[inside].mean().item())
    return 100.0 * total


@register("ece")
def _ece(run, against=None, bins: int = 15) -> float:
    o = run.outputs
    return math.nan if o is None else expected_calibration_error(o["logits"], o["labels"], bins)
