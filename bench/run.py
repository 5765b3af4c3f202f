"""`make bench`: each fast path against the baseline it replaces, measured in one run on this machine.

    python -m bench.run            # full (about 6 minutes on 2 CPU cores)
    python -m bench.run --quick    # fewer repeats and epochs (about 3 minutes)

Prints one markdown table and writes it to results/bench/cpu.md (on a CUDA machine
results/bench/gpu_bench.md: gpu.md is `make gpu-check`'s report). Rows:
- losses: kl / dkl / ikl, the registered (fused, losses/fused.py) forward+backward vs the
  same loss through plain autograd, and dkl / ikl vs the B x C x C official-style reference
  (`losses.reference`), each in a fresh process (time: median of repeats; memory: the exact
  peak of live tensors in B*C floats (bench/memory.py), and peak resident memory above the
  level before the call);
- data: ArraySplit batched crop+flip vs a torchvision per-sample transform through a
  DataLoader with 2 workers (the anchors' loader), CIFAR-shaped uint8 images, batch 64;
- training (mnist1d mini, 1000 samples, shift augmentation without noise so that it is
  enumerable; teacher cnn1d_teacher, six cnn1d_student tau runs, batch 128, Adam): six
  separate runs with an online teacher (baseline) vs one group (one teacher pass per
  batch), the group with stacked students (torch.func), and with cached teacher logits;
  one student with cached vs online teacher; student-images/s of the training loop;
- mini groups (bench/groups.py; real mini profile data, recipes and group sizes): paper 1's
  7-student tau group and 8 mini100 BatchNorm students, as separate runs / one group before this
  work's fast paths / one group now / one stacked group, epochs interleaved; per-student seconds
  extrapolated to the recipe's length.

Ratios are wall-clock baseline / fast path, taken in the same run, so a shared machine's load
affects both sides; absolute numbers move with it. Threads: 1 by default on CPU (`--threads`):
on a loaded 2-core machine two OpenMP threads can be 80x slower on small tensors.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common.files import atomic_write_text

TAUS = (1.0, 2.0, 3.0, 4.0, 8.0, 16.0)


def fmt(x, digits=3):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def markdown(rows: list[dict], columns: list[str]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(out)


# ------------------------------------------------------------------------------ losses
def loss_run(loss, impl, b, c, repeats, threads):
    cmd = [sys.executable, "-m", "bench.loss_worker", loss, impl, str(b), str(c), "--repeats", str(repeats),
           "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path.cwd()).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_losses(quick: bool, threads: int) -> list[dict]:
    rows = []
    for b, c in ((64, 100), (256, 1000)):
        est_gb = 7 * b * c * c * 4 / 2 ** 30        # about seven live B x C x C float32 tensors
        bb, note = b, ""
        if est_gb > 8:
            bb = max(1, int(b * 8 / est_gb))
            note = f"reference measured at B={bb} (B={b} needs ~{est_gb:.0f} GB); "
        for loss in ("kl", "dkl", "ikl"):
            repeats = 5 if quick else 30
            fast = loss_run(loss, "fast", b, c, repeats, threads)
            plain = loss_run(loss, "autograd", b, c, repeats, threads)
            memory = {"autograd_BC_floats": plain["tensor_bc"], "fast_BC_floats": fast["tensor_bc"],
                      "fast_BC_rss": fast["peak_mb"] * 2 ** 20 / 4 / (b * c)}
            mem_note = ("BC_floats: exact peak of live tensors (bench/memory.py) incl. the gradient, "
                        "in B*C float32; rss: resident-memory peak (a lower bound: freed heap is reused)")
            rows.append({"comparison": f"{loss} fused vs autograd, B={b} C={c}", "baseline": "same loss, autograd",
                         "baseline_s": plain["seconds"], "fast_s": fast["seconds"],
                         "speedup": plain["seconds"] / fast["seconds"], **memory, "note": mem_note})
            if loss == "kl":
                continue
            ref = loss_run(loss, "pairwise", bb, c, 0 if c >= 1000 else (5 if quick else 20), threads)
            ref_s = ref["seconds"] * b / bb
            rows.append({
                "comparison": f"{loss} O(B*C) vs B x C x C, B={b} C={c}", "baseline": "B x C x C reference",
                "baseline_s": ref_s, "fast_s": fast["seconds"], "speedup": ref_s / fast["seconds"],
                "baseline_MB": ref["peak_mb"] * b / bb, "fast_MB": fast["peak_mb"],
                "note": note + "forward+backward fp32, median; MB: peak RSS above inputs after a warm-up"
                        + ("; 0 = below RSS resolution" if b * c < 100_000 else "")})
    return rows


# ------------------------------------------------------------------------------ data
def bench_data(quick: bool) -> dict:
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from data.augment import CropFlip
    from data.splits import ArraySplit

    n = 2048 if quick else 8192
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 100, (n,), generator=gen)
    mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
    split = ArraySplit(x, y, CropFlip(4, 32), mean=mean, std=std)
    t0 = time.perf_counter()
    for _ in split.batches(64, shuffle=True, generator=torch.Generator().manual_seed(1)):
        pass
    ours = time.perf_counter() - t0

    tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(mean, std)])
    from PIL import Image
    images = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in x]

    class PilSet(Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return tf(images[i]), int(y[i])

    loader = DataLoader(PilSet(), batch_size=64, shuffle=True, num_workers=2)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    theirs = time.perf_counter() - t0
    return {"comparison": "CIFAR crop+flip batches, B=64 (images/s)", "baseline": "torchvision + DataLoader(2 workers)",
            "baseline_s": theirs, "fast_s": ours, "speedup": theirs / ours,
            "images_per_s": n / ours, "baseline_images_per_s": n / theirs,
            "note": f"{n} uint8 images, ArraySplit on this device vs PIL per sample"}


# ------------------------------------------------------------------------------ training
def bench_training(quick: bool) -> list[dict]:
    from engine import make_config, teacher_config, train, train_group
    from engine.rundir import RunDir

    data = {"num_train": 1000, "noise_sigma": 0.0}
    epochs = 2 if quick else 6
    teacher = train(teacher_config("mnist1d", "cnn1d_teacher", recipe="mini_teacher",
                                   recipe_overrides={"epochs": 2}, dataset_options=data), quiet=True)

    def configs(exp, cache=False, taus=TAUS):
        return [make_config(exp, "mnist1d", "cnn1d_student", loss="kl", loss_hparams={"tau": t},
                            teachers=[teacher.config.run_id], recipe="mini_student",
                            recipe_overrides={"epochs": epochs}, dataset_options=data, teacher_cache=cache)
                for t in taus]

    def timed(fn):
        t0 = time.perf_counter()
        rds = fn()
        wall = time.perf_counter() - t0
        loop = sum(sum(r["train_time_s"] for r in rd.metrics()) for rd in rds)   # per-member shares add up
        return wall, loop, rds

    n_img = len(TAUS) * epochs * data["num_train"]
    # cache built once (what the first run of a teacher pays)
    t0 = time.perf_counter()
    train_group(configs("warm", cache=True, taus=TAUS[:1]), quiet=True, force=True)
    warm = time.perf_counter() - t0

    one_online = timed(lambda: [train(configs("one_online")[0], quiet=True, force=True)])
    one_cached = timed(lambda: [train(configs("one_cached", cache=True)[0], quiet=True, force=True)])
    separate = timed(lambda: [train(c, quiet=True, force=True, stack=False) for c in configs("separate")])
    group = timed(lambda: train_group(configs("group"), quiet=True, force=True, stack=False))
    stacked = timed(lambda: train_group(configs("stacked"), quiet=True, force=True, stack=True))
    fast = timed(lambda: train_group(configs("fast", cache=True), quiet=True, force=True, stack=True))

    same = [RunDir(c).metrics()[-1]["test_top1"] for c in configs("separate")]
    fast_acc = [RunDir(c).metrics()[-1]["test_top1"] for c in configs("fast", cache=True)]
    gap = max(abs(a - b) for a, b in zip(same, fast_acc))

    def row(name, base, new, base_name, note, images):
        return {"comparison": name, "baseline": base_name, "baseline_s": base[0], "fast_s": new[0],
                "speedup": base[0] / new[0], "loop_speedup": base[1] / new[1],
                "images_per_s": images / new[1], "baseline_images_per_s": images / base[1], "note": note}

    six = f"6 kl tau runs, {epochs} epochs"
    return [
        row(f"6 students: one group, plain loop ({six})", separate, group, "6 separate runs, online teacher",
            "one teacher forward per batch instead of 6", n_img),
        row(f"6 students: group, stacked students ({six})", separate, stacked, "6 separate runs, online teacher",
            "torch.func vmap over stacked parameters", n_img),
        row(f"6 students: group, stacked + cached teacher ({six})", separate, fast, "6 separate runs, online teacher",
            f"no teacher forwards; max abs test top-1 difference vs separate runs {gap:.2f} pts", n_img),
        row(f"1 student: cached vs online teacher ({epochs} epochs)", one_online, one_cached, "online teacher",
            f"cache build (first run of the teacher, 1000 x 9 views) took {warm:.1f} s wall incl. a 1-run",
            epochs * data["num_train"]),
        {"comparison": "6-student sweep (stacked + cached) / one student run (online)", "baseline": "one run",
         "baseline_s": one_online[0], "fast_s": fast[0], "speedup": one_online[0] / fast[0],
         "loop_speedup": one_online[1] / fast[1],
         "note": "cost of the sweep in units of one run = 1/speedup (goal on GPU <= 1.5x)"},
    ]


# ------------------------------------------------------------------ mini student groups
def bench_groups(quick: bool) -> list[dict]:
    """bench/groups.py: the mini groups' variants interleaved epoch by epoch, per-student seconds
    extrapolated to the recipe's length (300 epochs mini, 100 mini100, with their evaluations)."""
    from bench.groups import compare

    rows = []
    for setting, epochs, what in (("mini7", 5 if quick else 10, "7 mini students (paper 1 tau group, cnn1d_student)"),
                                  ("mini100", 1 if quick else 2, "8 mini100 BN students (cnn1d_s100_shallow)")):
        r = compare(setting, epochs, log=lambda *a: None)
        v = r["variants"]
        base_note = (f"per-student s of the full recipe ({r['epochs']} epochs, {r['evals']} evaluations), "
                     f"extrapolated from {epochs} interleaved epochs; load {r['load'][0]:.1f}")

        def row(name, base, fast, note):
            b, f = v[base], v[fast]
            return {"comparison": f"{what}: {name}", "baseline": base, "baseline_s": b["per_student_wall_s"],
                    "fast_s": f["per_student_wall_s"], "speedup": b["wall_s"] / f["wall_s"],
                    "cpu_speedup": b["cpu_s"] / f["cpu_s"], "note": f"{note}; {base_note}"}

        rows += [row("group vs separate runs", "separate, before", "group",
                     "one teacher forward per batch, fastops, I/O threads"),
                 row("group now vs group before", "group, before", "group",
                     "engine/fastops.py pooling + I/O threads; bit-identical results"),
                 row("stacked group vs group", "group", "group, stacked",
                     "torch.func vmap" + (" with BatchNorm buffers" if setting == "mini100" else "")
                     + "; float32-rounding differences, recipe stack field"),
                 row("stacked group vs separate runs", "separate, before", "group, stacked", "all of the above")]
    return rows


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats and epochs")
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1: see above)")
    p.add_argument("--only", choices=["losses", "data", "training", "groups"], action="append",
                   help="run only these parts")
    p.add_argument("--out", help="markdown file (default results/bench/cpu.md, on CUDA results/bench/gpu_bench.md)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    parts = args.only or ["losses", "data", "training", "groups"]
    rows = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LOGIT_KD_RESULTS"] = str(Path(tmp) / "results")
        if "losses" in parts:
            rows += bench_losses(args.quick, args.threads)
        if "data" in parts:
            rows.append(bench_data(args.quick))
        if "training" in parts:
            rows += bench_training(args.quick)
        if "groups" in parts:
            rows += bench_groups(args.quick)
    cols = ["comparison", "baseline", "baseline_s", "fast_s", "speedup", "loop_speedup", "cpu_speedup", "images_per_s",
            "baseline_images_per_s", "baseline_MB", "fast_MB", "autograd_BC_floats", "fast_BC_floats", "fast_BC_rss", "note"]
    header = (f"# make bench{' --quick' if args.quick else ''}\n\n"
              f"device: {device_name()}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
              f"measured in one run of {time.perf_counter() - t_start:.0f} s on {time.strftime('%Y-%m-%d')}.\n"
              "speedup = baseline wall time / fast wall time (same run); loop_speedup = the same for the "
              "training loop only (train_time_s, without evaluation and checkpoints); images_per_s = "
              "student images per second of the training loop; cpu_speedup = the same for process CPU "
              "seconds (less sensitive to other jobs on a shared machine).\n\n")
    table = header + markdown(rows, cols) + "\n"
    print(table)
    # gpu_bench.md: results/bench/gpu.md is `make gpu-check`'s (bench/gpu_check.py)
    out = Path(args.out) if args.out else Path("results/bench") / ("gpu_bench.md" if torch.cuda.is_available() else "cpu.md")
    atomic_write_text(out, table)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
