"""Data-parallel training (engine/distributed.py): 2 gloo processes on the CPU via torchrun.

The global batch is the recipe's; rank r takes a slice of each global batch; DDP averages the
gradients of losses scaled by world * n_r / n, so a no-BatchNorm student (cnn1d_student)
trains as one process would, to float rounding. The last batch here splits unevenly (11 rows:
5 + 6) and the loss (ikl with the class prior) keeps per-batch teacher state.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data.augment import CropFlip, ShiftNoise
from data.splits import ArraySplit, shard_slice
from engine import teacher_config, train
from reproduce.train import main as train_cli

DATA = {"num_train": 203, "num_test": 64, "num_classes": 4, "shape": [1, 24]}
KEYS = ("train_loss", "train_top1", "test_loss", "test_top1", "agree_top1", "kl_teacher_student", "lr")


def test_shard_slices_cover_the_global_batch_in_rank_order():
    for n in (0, 1, 5, 11, 32):
        for world in (1, 2, 3):
            parts = [range(n)[shard_slice(n, (r, world))] for r in range(world)]
            assert [i for p in parts for i in p] == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("augment", [CropFlip(1, 8), None])
def test_array_split_shards_are_the_global_batches_images(augment):
    x = torch.randint(0, 256, (23, 1, 8, 8), dtype=torch.uint8)
    split = ArraySplit(x, torch.arange(23) % 4, augment)
    check_shards(split)


def test_array_split_shards_are_the_global_batches_with_random_noise():
    split = ArraySplit(torch.randn(23, 1, 24), torch.arange(23) % 4, ShiftNoise(max_shift=2, sigma=0.1))
    check_shards(split)


def test_folder_split_shards_are_the_global_batches(tmp_path):
    """ImageFolder + random crops: 12 images, batch 5 (5, 5, 2) over 3 ranks (one gets 0 rows)."""
    from tests.test_data_sets import WNIDS, _write_pngs

    base = tmp_path / "tiny-imagenet-200"
    _write_pngs(base / "train", WNIDS, 4, (64, 64))
    _write_pngs(base / "val", WNIDS, 1, (64, 64), seed=1)
    from data import build_dataset

    check_shards(build_dataset("tinyimagenet", root=tmp_path, num_workers=0).train, batch=5, world=3)


def check_shards(split, batch=8, world=2):
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    whole = list(split.batches(batch, shuffle=True, generator=gen()))
    shards = [list(split.batches(batch, shuffle=True, generator=gen(), shard=(r, world))) for r in range(world)]
    assert all(len(s) == len(whole) for s in shards)
    for step, b in enumerate(whole):
        for field in ("x", "y", "index"):
            torch.testing.assert_close(torch.cat([getattr(s[step], field) for s in shards]), getattr(b, field),
                                       rtol=0, atol=0)


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path, monkeypatch):
    one, two = tmp_path / "one", tmp_path / "two"
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(one))
    monkeypatch.setenv("LOGIT_KD_DATA", str(tmp_path / "data"))
    teacher = train(teacher_config("synthetic", "cnn1d_teacher", recipe="smoke", dataset_options=DATA), quiet=True)
    shutil.copytree(teacher.path, two / "runs" / teacher.path.name)   # the same teacher for both (it has BatchNorm)
    argv = ["--dataset", "synthetic", *sum((["--dataset-option", f"{k}={json.dumps(v)}"] for k, v in DATA.items()), []),
            "--model", "cnn1d_student", "--model-option", "length=24", "--recipe", "smoke", "--epochs", "2",
            "--batch-size", "32", "--teacher-run", teacher.config.run_id, "--loss", "ikl",
            "--loss-option", "class_prior=true", "--loss-option", "T2=4", "--quiet"]
    alone = train_cli(argv)

    env = os.environ | {"LOGIT_KD_RESULTS": str(two), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "reproduce.train", *argv], env=env, cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run directory:") == 1           # rank 0 alone prints

    runs = [r for r in (two / "runs").iterdir() if r.name != teacher.path.name]
    assert [r.name for r in runs] == [alone.path.name]          # one run directory, the same run id
    run = runs[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and alone.summary()["world_size"] == 1
    assert len((run / "log.txt").read_text().splitlines()) == 2    # written once per epoch, not per rank
    rows_two = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows_one = alone.metrics()
    assert [r["epoch"] for r in rows_two] == [r["epoch"] for r in rows_one] == [1, 2]
    for a, b in zip(rows_two, rows_one):
        for k in KEYS:
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), (k, a[k], b[k])
    w_two, w_one = torch.load(run / "model.pt"), torch.load(alone.model_file)
    for k, v in w_one.items():
        torch.testing.assert_close(w_two[k], v, rtol=1e-4, atol=1e-5)
    loss_two = torch.load(run / "checkpoint.pt", weights_only=False)["loss"]
    loss_one = torch.load(alone.checkpoint_file, weights_only=False)["loss"]
    assert loss_one["prior"] is not None and loss_two["prior"] is not None    # built, so the check is not vacuous
    torch.testing.assert_close(loss_two["prior"], loss_one["prior"], rtol=1e-6, atol=1e-7)   # global-batch prior
