"""Metrics computed from a run's saved test outputs (outputs.pt), for table cells whose metric
is not a summary column: `metric="cluster_spread"`, `"feature_dim"`, `"agreement:<key>"` (a key
of engine.evaluate.agreement_metrics, against the outputs of the cell's `against` run), or a
metric a paper's analysis module registers with `@register`.

Each takes (outputs, against_outputs or None) and returns a float (NaN when it cannot be
computed), or text for `reduce="first"` cells.
"""
from __future__ import annotations

import math

import torch

DERIVED: dict = {}


def register(name: str):
    def decorator(fn):
        DERIVED[name] = fn
        return fn

    return decorator


def is_derived(metric: str) -> bool:
    return metric in DERIVED or metric.split(":", 1)[0] in DERIVED


def compute(metric: str, outputs: dict, against: dict | None):
    """The value of a derived `metric` for one run."""
    name, _, arg = metric.partition(":")
    fn = DERIVED.get(metric) or DERIVED[name]
    return fn(outputs, against, arg) if arg else fn(outputs, against)


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


@register("cluster_spread")
def _cluster_spread(outputs, against=None) -> float:
    return cluster_spread(outputs["features"], outputs["labels"])


@register("feature_dim")
def _feature_dim(outputs, against=None) -> str:
    return str(outputs["features"].shape[1])


@register("agreement")
def _agreement(outputs, against, key: str) -> float:
    """An agreement metric of this run's test logits against another run's (e.g. a CE student
    against the teacher it never saw)."""
    from engine.evaluate import agreement_metrics

    if against is None:
        return math.nan
    return agreement_metrics(outputs["logits"].float(), against["logits"].float()).get(key, math.nan)
