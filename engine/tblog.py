"""Per-epoch scalars of a run for TensorBoard, and optionally Weights & Biases (offline).

Every run writes TensorBoard event files to results/runs/<run-id>/tb/, once per epoch, beside
metrics.jsonl: train and test top-1, the objective and every term its loss reports (the mean
over the epoch's steps), the learning rate, agreement with the teacher on evaluated epochs.

    tensorboard --logdir results/runs

`wandb=True` (`--wandb`) also logs the same scalars to a W&B run in offline mode under
<run>/wandb/ (sync it later with `wandb sync`); wandb is imported only then.

Neither writer enters the run id or changes what a run computes: they read the epoch's row
after it was written. A resumed run opens a new event file with purge_step = the first epoch it
trains again, so TensorBoard drops what an earlier process logged for those epochs.
LOGIT_KD_TENSORBOARD=0 turns TensorBoard off (benchmarks).
"""
from __future__ import annotations

import os
from pathlib import Path

from common import UserError

TB_DIR = "tb"
ENV = "LOGIT_KD_TENSORBOARD"
WANDB_PROJECT = "logit-kd"

# metrics-row key -> tag; any other numeric key becomes "metrics/<key>"
TAGS = {
    "train_top1": "train/top1", "train_loss": "train/loss", "lr": "train/lr", "train_time_s": "train/time_s",
    "test_top1": "test/top1", "test_top5": "test/top5", "test_loss": "test/loss",
    "agree_top1": "teacher/agree_top1", "kl_teacher_student": "teacher/kl", "logit_mse": "teacher/logit_mse",
    "logit_dist": "teacher/logit_dist", "mean_shift": "teacher/mean_shift", "centered_mse": "teacher/centered_mse",
}


def tensorboard_on() -> bool:
    return os.environ.get(ENV, "1") != "0"


def require_wandb():
    """The wandb module, or one line saying how to get it."""
    try:
        import wandb
    except ImportError:
        raise UserError("--wandb needs the wandb package: pip install wandb") from None
    return wandb


def scalars(row: dict, terms: dict) -> dict:
    """Tag -> value for one epoch: the row's numbers and the loss terms ("loss/<name>")."""
    out = {TAGS.get(k, f"metrics/{k}"): float(v) for k, v in row.items()
           if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}
    out |= {f"loss/{name}": float(v) for name, v in terms.items()}
    return out


class EpochWriters:
    """The writers of one run, opened at its first epoch (a skipped run writes nothing)."""

    def __init__(self, path: Path, run_id: str, config: dict, start_epoch: int = 0, wandb: bool = False):
        self.path, self.run_id, self.config = Path(path), run_id, config
        self.start_epoch, self.wandb = start_epoch, wandb
        self._tb = self._wb = None

    def write(self, row: dict, terms: dict) -> None:
        values, step = scalars(row, terms), int(row["epoch"])
        if tensorboard_on():
            tb = self._tb or self._open_tb()
            for tag, value in values.items():
                tb.add_scalar(tag, value, step)
            tb.flush()
        if self.wandb:
            (self._wb or self._open_wandb()).log(values, step=step)

    def _open_tb(self):
        from torch.utils.tensorboard import SummaryWriter

        folder = self.path / TB_DIR
        # resuming: events of the epochs trained again are dropped by TensorBoard
        purge = self.start_epoch + 1 if folder.exists() else None
        self._tb = SummaryWriter(str(folder), purge_step=purge)
        return self._tb

    def _open_wandb(self):
        wandb = require_wandb()
        self._wb = wandb.init(project=WANDB_PROJECT, id=self.run_id, name=self.run_id, dir=str(self.path),
                              config=self.config, mode="offline", resume="allow", reinit="create_new")
        return self._wb

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wb is not None:
            self._wb.finish()
        self._tb = self._wb = None
