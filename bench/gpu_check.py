"""`make gpu-check`: one unattended pass over the GPU speed questions, in a fixed time budget.

    python -m bench.gpu_check                      # on a CUDA machine: at most 8 minutes
    python -m bench.gpu_check --budget-min 12      # more time, steadier numbers
    python -m bench.gpu_check --smoke --out DIR    # CPU smoke scale (tests): seconds, same files

Writes <out>/gpu.md (the GPU named, every number with its unit and how it was measured) and
<out>/gpu_throughput.json (read by the --dry-run cost model, reproduce/costs.py):

    {"device": str, "torch": str, "date": "YYYY-MM-DD",
     "models": {model: {"train_img_s", "eval_img_s", "batch_size", "input": "cifar" | "imagenet"}},
     "pairs": {"<teacher>-><student>": {"train_img_s", "batch_size", "input"}}}

(train_img_s of a pair includes the teacher's forward pass). Default <out>: results/bench/.

Steps, each in its own process with its own time limit inside the budget (a step over its
limit is killed and recorded "timed out"; the files are always written, with what finished):

- teacher: trains the ResNet32x4 teacher of the next steps for one epoch on synthetic
  CIFAR-shaped data (a run directory in a temporary store; speed only, accuracy irrelevant).
- baseline: an mdistiller-style loop: torchvision RandomCrop(32, pad 4) + flip + ToTensor +
  Normalize per PIL image in a DataLoader with 2 workers over synthetic uint8 CIFAR-shaped
  images, ResNet32x4 teacher online, ResNet8x4 student, batch 64, SGD, CE + KD (tau 4, plain
  autograd kl_div), fp32, and mdistiller's per-step loss.cpu() and top-1/top-5 meters.
- engine_plain / engine_fast / engine_cached / engine_full: our engine (engine.train_group) on the
  same pair, data and batch: fp32 (data on the GPU with batched crop + flip, online teacher);
  + bf16 autocast and channels_last (--fast); + cached teacher logits; + torch.compile
  reduce-overhead (CUDA graphs). images/s of the training loop (metrics.jsonl train_time_s),
  epochs after the first (which holds compilation and warm-up).
- sweep: 6 KL students (tau 1, 2, 3, 4, 8, 16) in one group against one student run, both
  --fast with the cached teacher: the group's training-loop time over the single run's.
- pairs: every model of the paper profiles alone (CE) and every teacher -> student pair
  (paper 1: WRN-28-4 -> WRN-16-2 / 16-4 / 28-2, batch 128; paper 2: the pairs its declaration plans, CIFAR
  batch 64, ImageNet resnet34 -> resnet18 and resnet50 -> MobileNetV1 at 224 x 224, batch
  512): a fixed number of timed steps after a warm-up, extrapolated to an epoch (the data
  set's training images / measured images/s); fp32 as the paper scripts launch by default
  (cuDNN convolutions may use TF32, torch's default); CIFAR data through the engine's
  on-device crop + flip, ImageNet batches synthetic on the GPU (JPEG decoding not measured).
"""
from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from common.files import atomic_write_text

TAUS = (1.0, 2.0, 3.0, 4.0, 8.0, 16.0)
CIFAR_TRAIN, IMAGENET_TRAIN = 50_000, 1_281_167
MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


# ------------------------------------------------------------------------------ scales
@dataclass(frozen=True)
class Entry:
    """One measurement of the pairs step: a model alone (teacher None, CE) or a pair."""
    paper: str
    student: str
    teacher: str | None
    recipe: str | dict             # a recipe name, or a run config's resolved recipe
    input: str                     # "cifar" | "imagenet"
    loss: str = "ce"
    loss_hparams: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.student if self.teacher is None else f"{self.teacher}->{self.student}"


def paper_plan() -> list[Entry]:
    """Every teacher model alone and every teacher -> student pair of the papers' `paper` profiles
    (their declarations in reproduce/, so a new paper or pair is measured without an edit here),
    teachers first, each with the recipe its runs use."""
    from reproduce.costs import GPU_SPLITS
    from reproduce.papers import experiments
    from reproduce.runner import plan_configs

    plan, seen = [], set()
    for e in experiments():
        if "paper" not in e.profiles:
            continue
        paper = e.name
        configs = plan_configs(e.plan("paper"), "all")
        by_id = {c.run_id: c for c in configs}
        for c in sorted(configs, key=lambda c: bool(c.teachers)):
            kind = GPU_SPLITS[c.dataset][2]
            teacher = by_id[c.teachers[0]].model if c.teachers and c.teachers[0] in by_id else None
            key = (c.model, teacher, kind)
            if key in seen or (teacher is None and c.loss != "ce"):
                continue
            seen.add(key)
            plan.append(Entry(paper, c.model, teacher, c.recipe, kind, c.loss if teacher else "ce",
                              dict(c.loss_hparams) if teacher else {}))
    return plan


def smoke_plan() -> list[Entry]:
    return [Entry("smoke", "wrn_16_1", None, "kl_vs_mse_cifar", "cifar"),
            Entry("smoke", "wrn_16_1", "wrn_16_2", "kl_vs_mse_cifar", "cifar", "kl", {"tau": 4.0}),
            Entry("smoke", "MobileNetV1", "resnet18", "imagenet", "imagenet", "ikl",
                  {"alpha": 1.0, "beta": 4.0, "tau": 1.0, "T2": 1.0, "class_prior": True, "break_asymmetry": True})]


@dataclass(frozen=True)
class Scale:
    name: str
    shape: tuple                 # synthetic images of the teacher/baseline/engine/sweep steps
    n_train: int                 # their training images (a multiple of batch: no ragged last batch)
    n_test: int
    classes: int
    batch: int
    teacher: str
    student: str
    epochs: int                  # engine/sweep epochs; the first is warm-up
    baseline_images: int         # the baseline's data set (an epoch longer than its timed steps)
    baseline_warmup: int
    baseline_steps: int
    pair_warmup: int
    pair_steps: int              # timed steps per pairs-step measurement (at most)
    imagenet_px: int
    batch_cap: int | None        # smoke: smaller batches than the recipes'
    budget_s: float
    plan: str                    # "paper" | "smoke"

    def entries(self) -> list[Entry]:
        return paper_plan() if self.plan == "paper" else smoke_plan()


FULL = Scale("full", (3, 32, 32), 1920, 1000, 100, 64, "resnet32x4", "resnet8x4", 4, CIFAR_TRAIN, 10, 150,
             3, 25, 224, None, 480.0, "paper")
SMOKE = Scale("smoke", (3, 16, 16), 128, 64, 10, 32, "resnet14", "resnet8", 2, 128, 1, 3, 1, 2,
              32, 4, 150.0, "smoke")

# share of the budget per step (the last step, pairs, also gets whatever is left)
SHARES = {"teacher": 0.06, "baseline": 0.09, "engine_plain": 0.06, "engine_fast": 0.06, "engine_cached": 0.09,
          "engine_full": 0.20, "sweep": 0.13, "pairs": 0.28}
RESERVE_S = 0.03                 # of the budget: reporting, process exits
STEPS = tuple(SHARES)


# ------------------------------------------------------------------------------ plumbing
class Recorder:
    """A step's results, rewritten atomically after each measurement (a killed step keeps them)."""

    def __init__(self, path: Path):
        self.path, self.data = Path(path), {}

    def put(self, **kv) -> None:
        self.data.update(kv)
        atomic_write_text(self.path, json.dumps(self.data, indent=1, default=str))


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _data_options(scale: Scale) -> dict:
    return {"num_train": scale.n_train, "num_test": scale.n_test, "num_classes": scale.classes,
            "shape": list(scale.shape)}


def _teacher_config(scale: Scale):
    from engine import teacher_config

    return teacher_config("synthetic", scale.teacher, dataset_options=_data_options(scale),
                          recipe="mdistiller_cifar", recipe_overrides={"epochs": 1, "batch_size": scale.batch})


def _student_config(scale: Scale, tau: float, cache: bool, epochs: int | None = None):
    from engine import make_config

    return make_config("gpu-check", "synthetic", scale.student, loss="kl", loss_hparams={"tau": tau},
                       teachers=[_teacher_config(scale).run_id], recipe="mdistiller_cifar",
                       recipe_overrides={"epochs": epochs or scale.epochs, "batch_size": scale.batch},
                       dataset_options=_data_options(scale), teacher_cache=cache)


def _env_info() -> dict:
    import torch

    info = {"torch": torch.__version__, "python": platform.python_version(), "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info |= {"device": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(),
                 "memory_gib": round(p.total_memory / 2 ** 30, 1), "cudnn": torch.backends.cudnn.version(),
                 "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}
    else:
        info["device"] = f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return info


# ------------------------------------------------------------------------------ steps
def step_teacher(scale: Scale, rec: Recorder, deadline: float) -> None:
    from engine import train

    t0 = time.perf_counter()
    rd = train(_teacher_config(scale), device=str(_device()), quiet=True)
    rec.put(seconds=time.perf_counter() - t0, run=rd.config.run_id)


def step_baseline(scale: Scale, rec: Recorder, deadline: float) -> None:
    """The mdistiller-style loop (see the module docstring)."""
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from models import build_model

    dev = _device()
    gen = torch.Generator().manual_seed(0)
    n = scale.baseline_images            # CIFAR-sized: the workers do not restart inside the timing
    h = scale.shape[1]
    pixels = torch.randint(0, 256, (n, h, h, 3), dtype=torch.uint8, generator=gen).numpy()
    labels = torch.randint(0, scale.classes, (n,), generator=gen).tolist()
    tf = transforms.Compose([transforms.RandomCrop(h, padding=4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

    class Cifar(Dataset):                    # mdistiller's CIFAR100Instance: PIL image, label, index
        def __len__(self):
            return n

        def __getitem__(self, i):
            return tf(Image.fromarray(pixels[i])), labels[i], i

    loader = DataLoader(Cifar(), batch_size=scale.batch, shuffle=True, num_workers=2)
    torch.manual_seed(0)
    teacher = build_model(scale.teacher, num_classes=scale.classes).to(dev).eval()
    student = build_model(scale.student, num_classes=scale.classes).to(dev).train()
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

    def kd(zs, zt, tau=4.0):
        return F.kl_div(F.log_softmax(zs / tau, 1), F.softmax(zt / tau, 1), reduction="none").sum(1).mean() * tau ** 2

    def batches():
        while True:
            yield from loader

    meters = []
    steps, timed, t0 = 0, 0, None
    for image, target, _ in batches():
        image, target = image.float().to(dev, non_blocking=True), target.to(dev, non_blocking=True)
        logits = student(image).logits
        with torch.no_grad():
            zt = teacher(image).logits
        loss = 1.0 * F.cross_entropy(logits, target) + 1.0 * kd(logits, zt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        top = logits.topk(5, 1).indices                           # mdistiller's accuracy meters
        acc1 = (top[:, :1] == target[:, None]).any(1).float().mean() * 100
        acc5 = (top == target[:, None]).any(1).float().mean() * 100
        meters.append((loss.cpu().detach().numpy().mean(), acc1.item(), acc5.item()))
        steps += 1
        if steps == scale.baseline_warmup:
            _sync(dev)
            t0 = time.perf_counter()
        elif t0 is not None:
            timed += 1
            if timed >= scale.baseline_steps or time.perf_counter() > deadline - 2:
                break
    _sync(dev)
    elapsed = time.perf_counter() - t0
    rec.put(images_per_s=timed * scale.batch / elapsed, steps=timed, seconds=elapsed, batch=scale.batch)


ENGINE_VARIANTS = {      # name: (train_group keywords, cached teacher)
    "engine_plain": ({}, False),
    "engine_fast": ({"fast": True}, False),
    "engine_cached": ({"fast": True}, True),
    "engine_full": ({"fast": True, "compile": "reduce-overhead"}, True),
}


def _loop_stats(rundirs, n_train: int) -> dict:
    """Training-loop seconds of the epochs after the first, summed over the group's members
    (each row's train_time_s is the group's epoch time / members)."""
    rows = [rd.metrics() for rd in rundirs]
    epochs = len(rows[0])
    steady = sum(r[e]["train_time_s"] for r in rows for e in range(1, epochs))
    first = sum(r[0]["train_time_s"] for r in rows)
    return {"loop_s": steady, "first_epoch_s": first, "epochs_timed": epochs - 1,
            "student_images_per_s": len(rows) * n_train * (epochs - 1) / steady,
            "precision": rundirs[0].summary().get("precision")}


def step_engine(variant: str):
    def run(scale: Scale, rec: Recorder, deadline: float) -> None:
        from engine import train_group

        kwargs, cache = ENGINE_VARIANTS[variant]
        t0 = time.perf_counter()
        rds = train_group([_student_config(scale, 4.0, cache)], device=str(_device()), quiet=True, force=True,
                          **kwargs)
        stats = _loop_stats(rds, scale.n_train)
        rec.put(wall_s=time.perf_counter() - t0, images_per_s=stats.pop("student_images_per_s"), **stats,
                options={**kwargs, "teacher_cache": cache})
    return run


def step_sweep(scale: Scale, rec: Recorder, deadline: float) -> None:
    from engine import train_group

    kwargs = dict(device=str(_device()), quiet=True, force=True, fast=True)
    t0 = time.perf_counter()
    one = train_group([_student_config(scale, 4.0, True)], **kwargs)
    one_wall = time.perf_counter() - t0
    single = _loop_stats(one, scale.n_train)
    rec.put(single=single | {"wall_s": one_wall})
    t0 = time.perf_counter()
    six = train_group([_student_config(scale, tau, True) for tau in TAUS], **kwargs)
    six_wall = time.perf_counter() - t0
    group = _loop_stats(six, scale.n_train)
    rec.put(group=group | {"wall_s": six_wall, "students": len(TAUS)},
            loop_ratio=group["loop_s"] / single["loop_s"], wall_ratio=six_wall / one_wall,
            stacked=bool(six[0].summary().get("stacked")))


def step_pairs(scale: Scale, rec: Recorder, deadline: float) -> None:
    import torch

    entries = scale.entries()
    dev = _device()
    results, pending = {}, list(entries)
    rec.put(planned=[e.key for e in entries], models={}, pairs={}, notes={})
    weight = lambda e: 4.0 if e.input == "imagenet" else 1.0   # noqa: E731  slice of the remaining time
    while pending:
        e = pending.pop(0)
        left = deadline - time.perf_counter() - 1.0
        slice_s = left * weight(e) / (weight(e) + sum(weight(p) for p in pending))
        kind = "models" if e.teacher is None else "pairs"
        try:
            out = measure_entry(e, scale, dev, time.perf_counter() + slice_s)
        except Exception as exc:     # noqa: BLE001  one bad model must not stop the others
            out = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        results.setdefault(kind, {})[e.key] = out | {"paper": e.paper, "recipe": e.recipe, "input": e.input}
        rec.put(models=results.get("models", {}), pairs=results.get("pairs", {}))


def measure_entry(e: Entry, scale: Scale, dev, deadline: float) -> dict:
    """images/s of the engine's training step for one model (CE) or pair (its loss + the recipe's CE)."""
    import torch

    from engine.recipes import get_recipe
    from engine.trainer import build_optimizer
    from losses import build_loss
    from models import build_model

    recipe = get_recipe(e.recipe) if isinstance(e.recipe, str) else get_recipe("smoke").replace(**e.recipe)
    classes = 1000 if e.input == "imagenet" else 100
    batch = recipe.batch_size if scale.batch_cap is None else min(recipe.batch_size, scale.batch_cap)
    torch.manual_seed(0)
    student = build_model(e.student, num_classes=classes).to(dev).train()
    teacher = None if e.teacher is None else build_model(e.teacher, num_classes=classes).to(dev).eval()
    if teacher is not None:
        teacher.requires_grad_(False)
    opt = build_optimizer(student, recipe)
    loss_fn = build_loss(e.loss, **e.loss_hparams)
    if hasattr(loss_fn, "to"):
        loss_fn.to(dev)
    note = ""
    while True:
        try:
            got = _timed_steps(e, scale, dev, student, teacher, opt, loss_fn, recipe, batch, classes, deadline)
            break
        except torch.cuda.OutOfMemoryError:
            if batch <= 8:
                raise
        # out of the except clause: its traceback (and the batch's tensors) are released
        opt.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()
        batch //= 2
        note = f"out of memory at the recipe's batch {recipe.batch_size}: measured at batch {batch}"
    if got is None:
        return {"status": "timed out", "batch_size": batch}
    img_s, steps, step_s = got
    n_train = IMAGENET_TRAIN if e.input == "imagenet" else CIFAR_TRAIN
    out = {"status": "ok", "train_img_s": img_s, "batch_size": batch, "timed_steps": steps, "step_s": step_s,
           "epoch_s_extrapolated": n_train / img_s, "epochs": recipe.epochs, "note": note}
    if teacher is None and time.perf_counter() < deadline:
        out["eval_img_s"] = _eval_rate(student, e, scale, dev, classes, deadline)
    return out


def _batches(e: Entry, scale: Scale, dev, batch: int, classes: int):
    """Endless training batches: CIFAR through the engine's on-device crop + flip of uint8
    images (ArraySplit), ImageNet as one synthetic batch already on the device."""
    import torch

    if e.input == "imagenet":
        px = scale.imagenet_px
        g = torch.Generator(device="cpu").manual_seed(0)
        x = torch.randn((batch, 3, px, px), generator=g).to(dev)
        y = torch.randint(0, classes, (batch,), generator=g).to(dev)
        while True:
            yield x, y
    from data import build_dataset

    bundle = build_dataset("synthetic", num_train=max(batch * 4, 256), num_test=16, num_classes=classes,
                           shape=(3, 32, 32))
    split = bundle.train.to(dev)
    g = torch.Generator().manual_seed(0)
    while True:
        for b in split.batches(batch, shuffle=True, generator=g, drop_last=True):
            yield b.x, b.y


def _timed_steps(e, scale, dev, student, teacher, opt, loss_fn, recipe, batch, classes, deadline):
    import torch
    import torch.nn.functional as F

    data = _batches(e, scale, dev, batch, classes)
    t0, timed = None, 0
    for step, (x, y) in enumerate(data):
        if step == scale.pair_warmup:
            _sync(dev)
            t0 = time.perf_counter()
        if teacher is None:
            loss = F.cross_entropy(student(x).logits, y)
        else:
            with torch.no_grad():
                zt = teacher(x).logits
            zs = student(x).logits
            loss = recipe.kd_weight * loss_fn(zs, zt, y)
            if recipe.ce_weight:
                loss = loss + recipe.ce_weight * F.cross_entropy(zs, y)
            loss_fn.observe_teacher(zt, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if t0 is not None:
            timed += 1
            if timed >= scale.pair_steps:
                break
        if time.perf_counter() > deadline:
            if timed >= 2:
                break
            return None
    _sync(dev)
    elapsed = time.perf_counter() - t0
    return timed * batch / elapsed, timed, elapsed / timed


def _eval_rate(model, e, scale, dev, classes, deadline) -> float | None:
    import torch

    model.eval()
    px = scale.imagenet_px if e.input == "imagenet" else 32
    batch = (250 if e.input == "imagenet" else 1000) if scale.batch_cap is None else scale.batch_cap
    x = torch.randn((batch, 3, px, px), device=dev)
    with torch.no_grad():
        model(x)
        _sync(dev)
        t0, n = time.perf_counter(), 0
        while n < 5 and time.perf_counter() < deadline:
            model(x)
            n += 1
        _sync(dev)
    model.train()
    return n * batch / (time.perf_counter() - t0) if n else None


STEP_FUNCS = {"teacher": step_teacher, "baseline": step_baseline, "sweep": step_sweep, "pairs": step_pairs,
              **{v: step_engine(v) for v in ENGINE_VARIANTS}}


# ------------------------------------------------------------------------------ driver
def _child(name: str, scale: Scale, out: str, deadline: float, results_root: str, threads: int | None) -> None:
    os.setpgrp()                           # its own process group: a timeout kills DataLoader workers too
    os.environ["LOGIT_KD_RESULTS"] = results_root
    import torch

    if threads:
        torch.set_num_threads(threads)
    rec = Recorder(Path(out))
    try:
        rec.put(env=_env_info())
        if name in os.environ.get(HANG_ENV, "").split(","):
            time.sleep(3600)                   # fault injection for the tests: a step that overruns its limit
        STEP_FUNCS[name](scale, rec, deadline)
    except BaseException as e:             # noqa: BLE001  recorded for the report
        rec.put(error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        sys.stdout.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


def _preload() -> None:
    """Import the heavy modules once here, before forking: every step process inherits them
    (seconds each on a loaded machine). None of them initialises CUDA."""
    import PIL.Image  # noqa: F401
    import torchvision.transforms  # noqa: F401

    import data  # noqa: F401
    import engine.cache  # noqa: F401
    import engine.trainer  # noqa: F401
    import losses  # noqa: F401
    import models  # noqa: F401


HANG_ENV = "LOGIT_KD_GPU_CHECK_HANG"     # comma-separated steps that hang (tests of the time limits)


def run_step(name: str, scale: Scale, limit_s: float, work: Path, results_root: str, threads, log) -> dict:
    """Run one step in a forked process; kill it (and its children) past `limit_s`."""
    out = work / f"{name}.json"
    out.unlink(missing_ok=True)
    if limit_s < 0.1:
        return {"status": "skipped", "limit_s": limit_s, "elapsed_s": 0.0, "error": "no time left in the budget"}
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    t0 = time.perf_counter()
    p = ctx.Process(target=_child, args=(name, scale, str(out), t0 + limit_s, results_root, threads), daemon=False)
    p.start()
    p.join(limit_s)
    timed_out = p.is_alive()
    if timed_out:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.join()
    elapsed = time.perf_counter() - t0
    data = {}
    if out.exists():
        try:
            data = json.loads(out.read_text())
        except ValueError:
            data = {}
    status = "timed out" if timed_out else ("ok" if p.exitcode == 0 else "failed")
    log(f"  {name}: {status} in {elapsed:.1f} s (limit {limit_s:.0f} s)"
        + (f": {data.get('error')}" if status == "failed" else ""))
    return {"status": status, "limit_s": limit_s, "elapsed_s": elapsed, **data}


def parse_limits(pairs) -> dict:
    from common import UserError

    out = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or name not in STEPS:
            raise UserError(f"--limit takes STEP=SECONDS with STEP one of {', '.join(STEPS)}; got '{pair}'")
        try:
            out[name] = float(value)
        except ValueError:
            raise UserError(f"--limit {name}: '{value}' is not a number of seconds") from None
    return out


def run_check(scale: Scale, budget_s: float, out_dir: Path, *, limits=None, only=None, threads=None,
              log=print) -> dict:
    """All steps within `budget_s`; writes gpu.md and gpu_throughput.json into out_dir (always)."""
    t_start = time.perf_counter()
    limits = limits or {}
    steps = [s for s in STEPS if not only or s in only]
    reserve = RESERVE_S * budget_s
    pad = 4 if scale.shape[1] >= 32 else 1               # data/synthetic.py's CropFlip
    report = {"scale": scale.name, "budget_s": budget_s, "steps": {}, "date": time.strftime("%Y-%m-%d"),
              "n_train": scale.n_train, "cache_pairs": scale.n_train * (2 * pad + 1) ** 2 * 2,
              "teacher": scale.teacher, "student": scale.student, "batch": scale.batch,
              "shape": list(scale.shape), "epochs": scale.epochs}
    out_dir.mkdir(parents=True, exist_ok=True)
    _preload()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        root = str(work / "results")
        try:
            for name in steps:
                left = budget_s - reserve - (time.perf_counter() - t_start)
                share = left if name == steps[-1] else SHARES[name] * budget_s
                limit = max(0.0, min(limits.get(name, share), left))
                start = time.perf_counter() - t_start
                report["steps"][name] = {"start_s": start, **run_step(name, scale, limit, work, root, threads, log)}
        finally:
            report["wall_s"] = time.perf_counter() - t_start
            write_outputs(report, out_dir)
    return report


# ------------------------------------------------------------------------------ reports
def _env(report) -> dict:
    for s in report["steps"].values():
        if "env" in s:
            return s["env"]
    import torch

    return {"device": "unknown (the teacher step did not report)", "torch": torch.__version__}


def throughput_json(report) -> dict:
    env = _env(report)
    pairs_step = report["steps"].get("pairs", {})
    models = {k: {"train_img_s": v["train_img_s"], "eval_img_s": v.get("eval_img_s"),
                  "batch_size": v["batch_size"], "input": v["input"]}
              for k, v in pairs_step.get("models", {}).items() if v.get("status") == "ok"}
    for v in models.values():
        if v["eval_img_s"] is None:       # not measured in time: the cost model's 3x rule
            v["eval_img_s"] = 3 * v["train_img_s"]
    pairs = {k: {"train_img_s": v["train_img_s"], "batch_size": v["batch_size"], "input": v["input"]}
             for k, v in pairs_step.get("pairs", {}).items() if v.get("status") == "ok"}
    return {"device": env["device"], "torch": env["torch"], "date": report["date"], "models": models, "pairs": pairs}


def _f(x, digits=0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def markdown(report) -> str:
    env = _env(report)
    st = report["steps"]
    lines = [f"# make gpu-check{' (smoke scale: numbers mean nothing)' if report['scale'] == 'smoke' else ''}", "",
             f"GPU: **{env['device']}**" + (f" ({env.get('memory_gib')} GiB, {env.get('gpus')} visible)"
                                            if "memory_gib" in env else "")
             + f"; torch {env['torch']}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn', '-')}; TF32 matmul "
             f"{env.get('tf32_matmul', '-')}, cuDNN TF32 {env.get('tf32_cudnn', '-')}; {report['date']}.",
             f"Budget {report['budget_s']:.0f} s, used {report['wall_s']:.0f} s (`python -m bench.gpu_check`, one run; "
             "each step in its own process under its own time limit).", "",
             "| step | status | started at s | limit s | took s |", "|---|---|---|---|---|"]
    for name, s in st.items():
        lines.append(f"| {name} | {s['status']}{': ' + s['error'] if s.get('error') else ''} | "
                     f"{s['start_s']:.0f} | {s['limit_s']:.0f} | {s['elapsed_s']:.1f} |")
    base = st.get("baseline", {}).get("images_per_s")
    lines += ["", "## Training step: ours vs an mdistiller-style loop", "",
              f"{report['teacher']} teacher (online unless cached) -> {report['student']} student, batch "
              f"{report['batch']}, synthetic uint8 images {'x'.join(map(str, report['shape']))} with crop + flip "
              f"({report['n_train']:,} training images); images/s = student images per second of the training "
              "loop (baseline: timed steps after a warm-up, data loading included; engine: the epochs after the "
              f"first of {report['epochs']}, from metrics.jsonl train_time_s, i.e. without evaluation and "
              "checkpoints).", "",
              "| loop | images/s | vs baseline | precision / options |", "|---|---|---|---|",
              f"| mdistiller-style: DataLoader(2 workers) + PIL transforms, fp32, per-step loss.cpu() | "
              f"{_f(base)} | 1.00x | fp32 |"]
    names = {"engine_plain": "engine: data on the GPU (batched crop + flip), fp32",
             "engine_fast": "engine --fast: + bf16 autocast, channels_last",
             "engine_cached": "engine --fast + cached teacher logits",
             "engine_full": "engine --fast + cached teacher + --compile reduce-overhead (CUDA graphs)"}
    for v, label in names.items():
        s = st.get(v, {})
        ips = s.get("images_per_s")
        ratio = f"{ips / base:.2f}x" if ips and base else "-"
        lines.append(f"| {label} | {_f(ips) if ips else s.get('status', '-')} | {ratio} | "
                     f"{s.get('precision', '-')}, {json.dumps(s.get('options', {}))} |")
    if st.get("engine_cached", {}).get("wall_s") and st.get("engine_fast", {}).get("wall_s"):
        lines.append("")
        lines.append(f"Cache build (first use of the teacher: {report['cache_pairs']:,} (image, view) pairs, "
                     f"{report['n_train']:,} images x {report['cache_pairs'] // report['n_train']} views): about "
                     f"{st['engine_cached']['wall_s'] - st['engine_fast']['wall_s']:.1f} s "
                     "(wall of the cached run minus the uncached one).")
    if st.get("engine_full", {}).get("first_epoch_s"):
        lines.append(f"First epoch with compile (compilation + CUDA-graph capture included): "
                     f"{st['engine_full']['first_epoch_s']:.1f} s.")
    sw = st.get("sweep", {})
    lines += ["", "## Six students in one group vs one student run", ""]
    if "loop_ratio" in sw:
        lines += [f"6 KL students (tau {', '.join(f'{t:g}' for t in TAUS)}) sharing one data stream and the cached "
                  f"teacher, --fast, stacked: {sw['stacked']}: training loop {sw['group']['loop_s']:.2f} s vs "
                  f"{sw['single']['loop_s']:.2f} s for one student = **{sw['loop_ratio']:.2f}x one run** "
                  f"(wall incl. evaluation and checkpoints {sw['wall_ratio']:.2f}x; the goal: <= 1.5x)."]
    else:
        lines.append(f"not measured: {sw.get('status', 'not run')} {sw.get('error', '')}")
    pr = st.get("pairs", {})
    lines += ["", "## Paper-profile models and pairs: one epoch, extrapolated", "",
              "Each: a fixed number of timed training steps after a warm-up, fp32 (the paper scripts' default), "
              "at the recipe's batch size; epoch = 50,000 CIFAR / 1,281,167 ImageNet images / images/s. CIFAR "
              "batches through the engine's on-device crop + flip, ImageNet batches synthetic on the GPU (no JPEG "
              "decoding). A pair's images/s include the teacher's forward pass. Run hours = epochs x epoch "
              "(training only; evaluation adds about a third of an epoch's forward work).", "",
              "| paper | model or pair | input | batch | train img/s | eval img/s | s/step | epoch s | run h | status |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for kind in ("models", "pairs"):
        for key, v in pr.get(kind, {}).items():
            ok = v.get("status") == "ok"
            lines.append(
                f"| {v['paper']} | {key} | {v['input']} | {v.get('batch_size', '-')} | {_f(v.get('train_img_s'))} | "
                f"{_f(v.get('eval_img_s'))} | {_f(v.get('step_s'), 4)} | {_f(v.get('epoch_s_extrapolated'), 1)} | "
                f"{_f(v['epochs'] * v['epoch_s_extrapolated'] / 3600, 2) if ok else '-'} | "
                f"{v.get('status', '-')}{': ' + v['error'] if v.get('error') else ''}"
                f"{'; ' + v['note'] if v.get('note') else ''} |")
    missing = [k for k in pr.get("planned", []) if k not in pr.get("models", {}) and k not in pr.get("pairs", {})]
    if missing:
        lines += ["", f"Not reached within the budget: {', '.join(missing)} (the dry-run keeps its ASSUMED "
                      "throughputs for these)."]
    lines += ["", "Machine-readable: `gpu_throughput.json` beside this file (read by the --dry-run cost model, "
                  "reproduce/costs.py; models and pairs absent from it keep their labelled ASSUMED throughputs).", ""]
    return "\n".join(lines)


def write_outputs(report: dict, out_dir: Path) -> None:
    atomic_write_text(out_dir / "gpu_throughput.json", json.dumps(throughput_json(report), indent=1) + "\n")
    atomic_write_text(out_dir / "gpu.md", markdown(report))
    atomic_write_text(out_dir / "gpu_check.json", json.dumps(report, indent=1, default=str) + "\n")


# ------------------------------------------------------------------------------ CLI
def build_parser():
    from reproduce.cli import Parser

    p = Parser(prog="python -m bench.gpu_check", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-min", type=float, help="total time budget in minutes (default 8; smoke 2.5)")
    p.add_argument("--out", help="folder of gpu.md and gpu_throughput.json (default results/bench)")
    p.add_argument("--smoke", action="store_true", help="CPU smoke scale: tiny models and data, a few steps")
    p.add_argument("--only", action="append", choices=STEPS, help="run only these steps (repeatable)")
    p.add_argument("--limit", action="append", metavar="STEP=SECONDS", help="cap one step's time limit")
    p.add_argument("--threads", type=int, help="torch threads per step process (default: torch's; smoke 1)")
    return p


def main(argv=None):
    # torch.cuda.is_available() through NVML: asking it here would not initialise CUDA, which
    # would break the forked step processes
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    from common import UserError

    args = build_parser().parse_args(argv)
    try:
        scale = SMOKE if args.smoke else FULL
        budget = (args.budget_min * 60) if args.budget_min is not None else scale.budget_s
        if not budget > 0:
            raise UserError(f"--budget-min must be > 0, got {args.budget_min}")
        limits = parse_limits(args.limit)
        if not args.smoke and not _cuda_available():
                raise UserError("no CUDA GPU here: make gpu-check measures a GPU (--smoke runs the CPU smoke "
                                "scale of the same steps)")
        out = Path(args.out) if args.out else Path("results") / "bench"
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    threads = args.threads or (1 if args.smoke else None)
    print(f"gpu-check ({scale.name}): budget {budget:.0f} s, writing {out}/gpu.md and {out}/gpu_throughput.json")
    report = run_check(scale, budget, out, limits=limits, only=args.only, threads=threads)
    print(f"done in {report['wall_s']:.0f} s: {out / 'gpu.md'}")
    return report


def _cuda_available() -> bool:
    """Asked in a forked child: the parent must not initialise CUDA before forking the steps."""
    import torch  # noqa: F401  (imported once, inherited by the children)

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    p = ctx.Process(target=_exit_with_cuda)
    p.start()
    p.join()
    return p.exitcode == 0


def _exit_with_cuda() -> None:
    import torch

    os._exit(0 if torch.cuda.is_available() else 1)


if __name__ == "__main__":
    main()
