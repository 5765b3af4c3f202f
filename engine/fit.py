"""How well a finished (teacher) run fits its own training set: top-1 and the mean probability of
the true class at tau 1, on the un-augmented training signals with their clean labels.

CIFAR-100 teachers fit their training set almost perfectly; a mini teacher that does not is
outside the papers' regime (results/many_class: `regime`). Written once per run as fit.json
(a saved file the analysis reads as the metric "fit:<key>"); a single pass over the training set.
"""
from __future__ import annotations

import json

import torch

from data import build_dataset
from engine.config import RunConfig
from engine.evaluate import predict
from engine.rundir import RunDir, atomic_write_bytes
from models import build_model

FIT_FILE = "fit.json"


def measure_fit(config: RunConfig, data_root=None, device: str = "cpu") -> dict:
    """{"train_top1": %, "true_class_prob": mean p_y at tau 1, "n": signals}, un-augmented."""
    rd = RunDir(config)
    bundle = build_dataset(config.dataset, data_root, **config.dataset_options)
    split = bundle.train.subset(torch.arange(len(bundle.train)), augment=None)
    model = build_model(config.model, num_classes=bundle.num_classes, in_channels=bundle.in_channels,
                        **config.model_options)
    model.load_state_dict(torch.load(rd.model_file, map_location="cpu", weights_only=True))
    logits = predict(model.to(device), split, 512, device).logits.cpu()
    labels = split.labels.cpu()
    prob = torch.softmax(logits.double(), dim=1).gather(1, labels[:, None]).squeeze(1)
    return {"train_top1": (logits.argmax(1) == labels).double().mean().item() * 100,
            "true_class_prob": prob.mean().item(), "n": int(len(labels)), "augmented": False}


def write_fit(config: RunConfig, data_root=None) -> bool:
    """fit.json for a finished run that lacks it; True when it was written."""
    rd = RunDir(config)
    path = rd.path / FIT_FILE
    if not rd.finished or path.exists():
        return False
    fit = measure_fit(config, data_root)
    atomic_write_bytes(path, (json.dumps(fit, indent=1) + "\n").encode())
    return True
