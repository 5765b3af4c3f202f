"""Test-set evaluation: accuracy of any model and, for students, agreement with the teacher.

All metrics are means over the test set; logit metrics are per sample then averaged,
so they are comparable across batch sizes. `mean_shift` is paper 1's delta_inf part of
the logit gap: the per-sample mean over classes of z_s - z_t, in absolute value.
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F


class Predictions(NamedTuple):
    logits: torch.Tensor         # (N, C) float32, the whole split in order
    feature_norms: torch.Tensor  # (N,) L2 norm of each penultimate feature vector
    features: torch.Tensor       # (min(N, feature_rows), D): the first rows, for projections


@torch.no_grad()
def predict(model, split, batch_size: int, device, feature_rows: int = 0) -> Predictions:
    """One pass over `split` in order, without augmentation, in eval mode."""
    was_training = model.training
    model.eval()
    logits, norms, features, seen = [], [], [], 0
    for batch in split.batches(batch_size, shuffle=False, generator=None):
        out = model(batch.x.to(device, non_blocking=True))
        logits.append(out.logits.float())
        norms.append(out.features.float().norm(dim=1))
        if seen < feature_rows:
            features.append(out.features[: feature_rows - seen].float())
        seen += len(batch.y)
    model.train(was_training)
    feats = torch.cat(features) if features else torch.empty(0)
    return Predictions(torch.cat(logits), torch.cat(norms), feats)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    labels = labels.to(logits.device)
    k = min(5, logits.shape[1])
    topk = logits.topk(k, dim=1).indices
    return {
        "test_top1": 100.0 * (topk[:, 0] == labels).float().mean().item(),
        "test_top5": 100.0 * (topk == labels[:, None]).any(dim=1).float().mean().item(),
        "test_loss": F.cross_entropy(logits, labels).item(),
    }


def agreement_metrics(student: torch.Tensor, teacher: torch.Tensor) -> dict:
    d = student - teacher
    mean_gap = d.mean(dim=1)
    kl = (F.softmax(teacher, 1) * (F.log_softmax(teacher, 1) - F.log_softmax(student, 1))).sum(1)
    return {
        "agree_top1": 100.0 * (student.argmax(1) == teacher.argmax(1)).float().mean().item(),
        "kl_teacher_student": kl.mean().item(),                          # tau = 1
        "logit_mse": d.pow(2).mean().item(),                              # LMSE's own objective
        "logit_dist": d.norm(dim=1).mean().item(),                        # ||z_s - z_t||_2
        "mean_shift": mean_gap.abs().mean().item(),                       # |mean_j (z_s - z_t)|
        "centered_mse": (d - mean_gap[:, None]).pow(2).mean().item(),     # what tau = inf matches
        "logit_norm": student.norm(dim=1).mean().item(),
        "logit_mean": student.mean().item(),
    }
