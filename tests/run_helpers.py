"""Stopping a run part-way, as a kill would, for the reliability tests."""
import pytest

from engine import RunDir, train
from engine.trainer import Trainer


class Stop(Exception):
    pass


def interrupted(cfg, monkeypatch, after: int) -> RunDir:
    """`cfg` trained until its checkpoint of epoch `after`, then stopped (a kill at that point)."""
    real = Trainer._checkpoint

    def checkpoint(self, m, epoch_done):
        real(self, m, epoch_done)
        if epoch_done == after:
            raise Stop

    monkeypatch.setattr(Trainer, "_checkpoint", checkpoint)
    with pytest.raises(Stop):
        train(cfg, quiet=True)
    monkeypatch.setattr(Trainer, "_checkpoint", real)
    return RunDir(cfg)


def killed_at_step(cfg, monkeypatch, step: int) -> None:
    """`cfg` trained until its `step`-th training step (1-based) raises, as a kill mid-epoch would;
    the run keeps whatever its last checkpoint holds."""
    real, calls = Trainer._objective, {"n": 0}

    def objective(self, *args):
        calls["n"] += 1
        if calls["n"] == step:
            raise Stop
        return real(self, *args)

    monkeypatch.setattr(Trainer, "_objective", objective)
    with pytest.raises(Stop):
        train(cfg, quiet=True)
    monkeypatch.setattr(Trainer, "_objective", real)
