"""The one training loop: teachers (CE) and students (any loss) for every paper.

`train_group` trains several runs that share a data stream (same dataset, seed, label
noise, teachers, batch size and epochs) on the same batches, computing the teacher once
per batch; each run still has its own model, optimizer, loss state, run directory and
checkpoint, and ends exactly where it would have ended alone (tested). `train` is the
group of one.

Per epoch: data order and augmentation come from a generator seeded by (seed, epoch),
so resuming at an epoch boundary replays the same batches; the learning rate is a pure
function of (epoch, step). Checkpoints are written atomically at every epoch end.
`train_group` validates everything first and holds each run's lock while it trains; a run
whose loss diverges stops alone (failed.json) and the others finish (docs/runs.md).

Launched by torchrun with WORLD_SIZE > 1, the same loop trains data-parallel (one process
per GPU or CPU rank, DistributedDataParallel; see engine/distributed.py): each rank takes
its slice of every global batch, rank 0 alone writes the run directories.
"""
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from common import UserError
from data import build_dataset
from data.noise import load_or_make_noisy_labels
from engine import distributed
from engine.config import RunConfig
from engine.fastops import accelerate
from engine.imported import import_command, record_first_use
from engine.evaluate import Predictions, agreement_metrics, classification_metrics, predict
from engine.recipes import evaluates, kd_ramp, lr_at
from engine.rundir import RunDir, atomic_torch_save, hold, results_root
from engine.tblog import EpochWriters, require_wandb
from engine.teachers import check_teacher_accuracy, load_teacher
from losses import build_loss
from models import build_model

FEATURE_ROWS = 2000     # test samples whose penultimate features are saved for projections
EVAL_BATCH = 1000


class TrainingDiverged(RuntimeError):
    """The loss of one or more runs became NaN or inf; each keeps its last good checkpoint and a
    failed.json, the other runs of its group finish."""


@dataclass
class Member:
    """One run inside a group: its model, optimizer, loss and run directory."""
    config: RunConfig
    rundir: RunDir
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: object
    start_epoch: int = 0
    log: list = field(default_factory=list)
    forward: object = None          # model, or its torch.compile'd forward (GPU path)
    failed: str | None = None       # why it stopped (diverged); the others of the group go on
    rng_state: object = None        # the global RNG state at this member's epoch end, for its checkpoint
    terms: dict = field(default_factory=dict)   # loss term -> this epoch's step values (detached), for TensorBoard
    writers: EpochWriters | None = None         # TensorBoard (and W&B) scalars, rank 0 only


def resolve_device(device: str) -> torch.device:
    """auto (CUDA when present), cpu, cuda, cuda:N or mps; anything else is a UserError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device '{device}' asked for but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"device '{device}': this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"device '{device}' asked for but MPS is not available here")
    elif dev.type != "cpu":
        raise UserError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N")
    return dev


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """Data order and augmentation of one epoch: independent of everything else, so resume replays it."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def build_optimizer(model: torch.nn.Module, recipe) -> torch.optim.Optimizer:
    return optimizer_for([(name, p, p.ndim) for name, p in model.named_parameters()], recipe)


def optimizer_for(named: list, recipe) -> torch.optim.Optimizer:
    """named: (name, tensor, ndim of one model's parameter); stacked students pass (N, ...) tensors."""
    decay, no_decay = [], []
    for name, p, ndim in named:
        exempt = recipe.wd_exempt_bn_bias and (ndim <= 1)   # BN weights/biases and all biases are 1-D
        (no_decay if exempt else decay).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)


def load_data(config: RunConfig, data_root, download: bool, bundle=None):
    """The run's data (a copy of `bundle` when one was built already, by validation), with its
    noisy training labels."""
    if bundle is None:
        bundle = build_dataset(config.dataset, root=data_root, download=download, **config.dataset_options)
    bundle = dataclasses.replace(bundle)      # never change the caller's bundle
    noise = config.label_noise
    if noise.kind != "none" and noise.rate > 0:
        key = f"{config.dataset}-{_options_tag(config.dataset_options)}-{noise.kind}-{noise.rate:g}-s{noise.seed}.pt"
        noisy = load_or_make_noisy_labels(results_root() / "labels" / key, bundle.train.labels,
                                          bundle.num_classes, noise.kind, noise.rate, noise.seed)
        bundle.train = bundle.train.with_labels(noisy)
    return bundle


def _options_tag(options: dict) -> str:
    return "_".join(f"{k}{v}" for k, v in sorted(options.items())) or "default"


GROUP_KEYS = ("dataset", "dataset_options", "seed", "label_noise", "teachers", "ensemble", "teacher_cache")


def check_group(configs: list[RunConfig]) -> None:
    first = configs[0]
    for c in configs[1:]:
        for key in GROUP_KEYS:
            if getattr(c, key) != getattr(first, key):
                raise UserError(f"runs trained together must share {key}: {getattr(first, key)} vs {getattr(c, key)}")
        for key in ("batch_size", "epochs"):
            if c.recipe[key] != first.recipe[key]:
                raise UserError(f"runs trained together must share the recipe's {key}")
    if len({c.run_id for c in configs}) != len(configs):
        raise UserError("the same run appears twice in one group")


class Trainer:
    """Trains a group of runs on one data stream. Use `train_group` / `train`."""

    def __init__(self, configs, *, device="auto", data_root=None, download=False, force=False,
                 quiet=False, log_every=1, teacher_bank=None, stack="auto", fast=False, compile=False,
                 bundle=None, wandb=False):
        check_group(configs)
        self.configs = configs
        if wandb:
            require_wandb()             # one line naming `pip install wandb`, before anything is written
        self.wandb = bool(wandb)
        # torchrun (WORLD_SIZE > 1): data-parallel over ranks; otherwise a single process
        self.dist = distributed.context(device)
        self.device = resolve_device(distributed.resolve_device(device, self.dist))
        quiet = quiet or not self.dist.is_main          # only rank 0 prints
        self.quiet, self.log_every, self.force = quiet, max(1, log_every), force
        first = configs[0]
        self.seed, self.batch_size, self.epochs = first.seed, first.recipe["batch_size"], first.recipe["epochs"]
        if stack not in ("auto", True, False):
            raise UserError(f"stack must be 'auto', True or False, got {stack!r}")
        if self.dist.enabled:
            if stack is True:
                raise UserError("stacked students are not available with distributed (torchrun) training")
            stack = False
        # A/B switches for benchmarks (bench/groups.py): the exact fast pooling of engine/fastops.py,
        # and run-directory writes on I/O threads (False: in line, as before)
        self.fast_ops = os.environ.get("LOGIT_KD_FASTOPS", "1") != "0"
        self.io_threads = True
        with self.dist.rank_zero_first():    # rank 0 may write label-noise files and teacher caches
            self.bundle = load_data(first, data_root, download, bundle)
            self.bundle.train = self.bundle.train.to(self.device)
            self.bundle.test = self.bundle.test.to(self.device)
            self.teachers = self._load_teachers(first)
            self.teacher_bank = teacher_bank
            if teacher_bank is None and first.teacher_cache and self.teachers:
                from engine.cache import bank_for
                from engine.teachers import teacher_rundir

                dirs = [teacher_rundir(t.run_id).path for t in self.teachers]
                self.teacher_bank = bank_for(self.teachers, dirs, first, self.bundle.train, self.device, quiet)
        self.teacher_test = self._teacher_test_logits()
        self.stack = stack
        self.stacked = None
        # GPU path (CUDA only; the CPU keeps fp32): bf16 autocast for the forward passes (the
        # losses upcast to fp32 and run with autocast off), channels_last for image models,
        # optional torch.compile of each student's forward. Not part of the run id: the
        # summary records the precision used.
        self.fast = bool(fast) and self.device.type == "cuda"
        # compile: False, True ("default") or a torch.compile mode; "reduce-overhead" replays the
        # step's kernels as CUDA graphs (the small-batch recipe's launch overhead)
        self.compile_mode = compile_mode(compile)
        self.compile = self.compile_mode is not None and self.device.type == "cuda" and not self.dist.enabled
        if (fast or compile) and not (self.fast or self.compile) and not quiet:
            print("note: --fast/--compile apply on CUDA only; this run keeps fp32 on the CPU", flush=True)
        self.channels_last = self.fast and len(self.bundle.input_shape) == 3
        if self.channels_last:
            for t in self.teachers:
                t.model.to(memory_format=torch.channels_last)

    # ---------------------------------------------------------------- teachers
    def _load_teachers(self, config: RunConfig):
        loaded = [load_teacher(rid, self.bundle.num_classes, self.bundle.in_channels, self.device)
                  for rid in config.teachers]
        if self.device.type == "cpu" and self.fast_ops:
            for t in loaded:
                accelerate(t.model)          # eval-mode forwards: the same values (engine/fastops.py)
        for t in loaded:
            fresh = t.recorded_top1 is None        # released weights, not measured yet: their outputs are kept
            preds = predict(t.model, self.bundle.test, EVAL_BATCH, self.device, feature_rows=FEATURE_ROWS * fresh)
            metrics = classification_metrics(preds.logits, self.bundle.test.labels)
            if not fresh:
                check_teacher_accuracy(t, metrics["test_top1"])
            elif self.dist.is_main:
                t.recorded_top1 = record_first_use(t.run_id, config, self.bundle, preds, metrics)
        return loaded

    def teacher_logits(self, x: torch.Tensor, batch) -> torch.Tensor | None:
        if not self.teachers:
            return None
        if self.teacher_bank is not None:
            return self.teacher_bank.lookup(batch.index, batch.views).to(x.device)
        with torch.no_grad(), self._autocast():
            stacked = torch.stack([t.model(x).logits.float() for t in self.teachers])
        return stacked.mean(0) if self.configs[0].ensemble == "mean" else stacked.sum(0)

    def _teacher_test_logits(self):
        if not self.teachers:
            return None
        stacked = torch.stack([predict(t.model, self.bundle.test, EVAL_BATCH, self.device).logits for t in self.teachers])
        return stacked.mean(0) if self.configs[0].ensemble == "mean" else stacked.sum(0)

    # ---------------------------------------------------------------- members
    def _make_member(self, config: RunConfig) -> Member:
        if config.is_teacher and config.loss != "ce":
            raise UserError(f"loss '{config.loss}' needs a teacher (--teacher); without one only 'ce' trains")
        rundir = RunDir(config)
        torch.manual_seed(config.seed)   # the same init whether trained alone or in a group
        model = build_model(config.model, num_classes=self.bundle.num_classes,
                            in_channels=self.bundle.in_channels, **config.model_options).to(self.device)
        recipe = config.recipe_obj()
        member = Member(config, rundir, model, build_optimizer(model, recipe),
                        build_loss(config.loss, **config.loss_hparams))
        if hasattr(member.loss_fn, "to"):
            member.loss_fn.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.device.type == "cpu" and self.fast_ops:
            accelerate(model)        # exact faster pooling kernels (engine/fastops.py): same bits
        member.forward = torch.compile(model, mode=self.compile_mode) if self.compile else model   # state_dict stays model's
        if self.dist.is_main:                  # everything built: only now the directory is written
            rundir.create(str(self.device), force=self.force)   # (the other ranks only read, after rank 0)
        if rundir.started:
            self._restore(member)
        if self.dist.is_main:
            member.writers = EpochWriters(rundir.path, config.run_id, config.to_dict(), member.start_epoch, self.wandb)
        return member

    def _wrap_ddp(self, m: Member) -> None:
        """DistributedDataParallel around the model (its constructor is a collective: every
        rank calls it at the same point; it broadcasts rank 0's weights)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        m.forward = DistributedDataParallel(m.model, device_ids=ids)

    def _restore(self, m: Member) -> None:
        state = m.rundir.load_checkpoint()
        m.model.load_state_dict(state["model"])
        m.optimizer.load_state_dict(state["optimizer"])
        m.loss_fn.load_state_dict(state["loss"])
        torch.set_rng_state(state["torch_rng"])
        m.start_epoch = state["epoch"]
        if self.dist.is_main:
            m.rundir.resume_metrics(m.start_epoch)
        if not self.quiet:
            print(f"[{m.config.display_name}] resuming from epoch {m.start_epoch}/{self.epochs}: {m.rundir.path}", flush=True)

    def _checkpoint(self, m: Member, epoch_done: int) -> None:
        m.rundir.save_checkpoint(self._checkpoint_state(m, epoch_done))

    def _stack_summary(self, m: Member) -> dict:
        st = None if self.stacked is None else self.stacked.of(m)
        return {"stacked": st is not None, **({"stack_size": len(st.members)} if st is not None else {})}

    def _checkpoint_state(self, m: Member, epoch_done: int) -> dict:
        model = m.model.state_dict()
        if self.stacked is not None:      # views of the stacked storage: save this member's values only
            model = {k: v.clone() for k, v in model.items()}
        rng = m.rng_state if m.rng_state is not None else torch.get_rng_state()
        return {"run_id": m.config.run_id, "epoch": epoch_done, "model": model,
                "optimizer": m.optimizer.state_dict(), "loss": m.loss_fn.state_dict(), "torch_rng": rng}

    def _write_epoch(self, m: Member, row: dict, epoch_done: int, terms: dict | None = None) -> None:
        """The epoch's metrics row, then its checkpoint (the order resume relies on: docs/runs.md),
        then its TensorBoard scalars. Runs on an I/O thread while the main thread evaluates the
        other members: nothing of `m` changes before the epoch's writes are waited for."""
        m.rundir.append_metrics(row)
        self._checkpoint(m, epoch_done)
        if m.writers is not None:
            m.writers.write(row, terms or {})

    # ---------------------------------------------------------------- the loop
    def run(self) -> list[RunDir]:
        with self.dist.rank_zero_first():      # rank 0 creates (or wipes, with force) the run dirs
            members = [self._make_member(c) for c in self.configs]
        if self.dist.enabled:
            for m in members:
                self._wrap_ddp(m)
        starts = {m.start_epoch for m in members}
        if len(starts) > 1:
            raise UserError(f"runs in one group are at different epochs {sorted(starts)}; train them separately")
        start = starts.pop()
        self.stacked = self._maybe_stack(members)
        try:
            for epoch in range(start, self.epochs):
                if all(m.failed for m in members):
                    break
                self._train_epoch(members, epoch)
            if self.dist.is_main:
                for m in members:
                    if not m.failed:
                        self._finish(m)
        finally:
            for m in members:
                if m.writers is not None:
                    m.writers.close()
        self.dist.barrier()                    # every rank returns once the summaries exist
        failed = [m.failed for m in members if m.failed]
        if failed:
            raise TrainingDiverged(failed[0] if len(failed) == 1 else
                                   f"{len(failed)} of {len(members)} runs diverged: " + "; ".join(failed))
        return [m.rundir for m in members]

    def _maybe_stack(self, members):
        """Same-architecture students train as one vmapped model each (engine/stacked.py; a
        group of several architectures stacks each architecture's part). `stack=True`: every part
        of two or more runs stacks (an error if one cannot); False: the plain per-model loop
        (bit-identical to separate runs); "auto" (default): the runs whose recipe says
        `stack: true` (equal to separate runs up to float32 rounding; the field is in the run
        id), and on CUDA also parts without buffers (no BatchNorm), as before the recipe field.
        Returns a `Stacks` or None."""
        from engine.stacked import StackedStudents, Stacks, model_reason, partition

        if self.stack is False or len(members) < 2:
            return None
        groups = []
        if self.stack is True:
            parts = [p for p in partition(members) if len(p) > 1]
            if not parts:
                raise UserError("cannot stack these runs: no two of them share an architecture and optimizer settings")
            for part in parts:
                reason = model_reason(part[0].model)
                if reason is not None:
                    raise UserError(f"cannot stack these runs ({part[0].config.model}): {reason}")
                groups.append(part)
        else:
            asked = [m for m in members if m.config.recipe.get("stack", False)]
            groups = [p for p in partition(asked) if len(p) > 1 and model_reason(p[0].model) is None]
            if self.device.type == "cuda":     # the GPU default before the recipe field: buffer-free parts
                rest = [m for m in members if not m.config.recipe.get("stack", False)]
                groups += [p for p in partition(rest) if len(p) > 1 and model_reason(p[0].model) is None
                           and not any(True for _ in p[0].model.buffers())]
        if not groups:
            return None
        return Stacks([StackedStudents(g, g[0].config.recipe_obj(), optimizer_for) for g in groups], members)

    def _train_epoch(self, members: list[Member], epoch: int) -> None:
        t0 = time.perf_counter()
        train = self.bundle.train
        steps = math.ceil(len(train) / self.batch_size)
        recipes = [m.config.recipe_obj() for m in members]
        step_losses = torch.zeros(len(members), steps, device=self.device)
        correct = torch.zeros(len(members), device=self.device)
        for m in members:
            m.model.train()
        index = {id(m): i for i, m in enumerate(members)}
        plain = [index[id(m)] for m in (members if self.stacked is None else self.stacked.plain)]
        batches = train.batches(self.batch_size, shuffle=True, generator=epoch_generator(self.seed, epoch),
                                shard=self.dist.shard)     # None (the whole batch) outside torchrun
        gather_teacher = self.dist.enabled and any(_observes(m.loss_fn) for m in members)
        bar = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}/{self.epochs}", leave=False,
                   disable=self.quiet or not sys.stderr.isatty())
        for step, batch in enumerate(bar):
            x, y = batch.x.to(self.device, non_blocking=True), batch.y.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            zt = self.teacher_logits(x, batch)
            progress = (epoch + step / steps) / max(self.epochs, 1)
            if self.stacked is not None:
                for st in self.stacked.groups:
                    self._stacked_step(st, [index[id(m)] for m in st.members], recipes, x, y, zt, epoch, step,
                                       steps, progress, step_losses, correct)
            # distributed: this rank's share of the global batch; its loss is scaled by
            # world * n_local / n_global so that DDP's gradient average is the global-batch mean
            n_global = min(self.batch_size, len(train) - step * self.batch_size)
            share = len(y) / n_global
            if gather_teacher and zt is not None:
                zt_all, y_all = self.dist.all_gather_rows(zt), self.dist.all_gather_rows(y)
            else:
                zt_all, y_all = zt, y
            for i in plain:
                m, recipe = members[i], recipes[i]
                if m.failed:                   # diverged in an earlier epoch: the others go on
                    continue
                for group in m.optimizer.param_groups:
                    group["lr"] = lr_at(recipe, epoch, step, steps)
                m.loss_fn.set_progress(progress)
                with self._autocast():
                    zs = m.forward(x).logits
                if len(y):
                    loss = self._objective(m, recipe, zs, zt, y, epoch)
                else:                          # no rows for this rank (tiny last batch): zero gradient
                    loss = zs.sum() * 0.0
                m.optimizer.zero_grad(set_to_none=True)
                (loss * (self.dist.world * share) if self.dist.enabled else loss).backward()
                m.optimizer.step()
                if zt is not None:
                    m.loss_fn.observe_teacher(zt_all, y_all)
                step_losses[i, step] = loss.detach() * share if self.dist.enabled else loss.detach()
                correct[i] += (zs.detach().argmax(1) == y).sum()
        self.dist.all_reduce_sum(step_losses)     # global-batch mean losses, correct counts over ranks
        self.dist.all_reduce_sum(correct)
        elapsed = time.perf_counter() - t0
        active = sum(not m.failed for m in members)   # the members that trained this epoch
        if self.stacked is not None:
            self.stacked.export_state()
        # Each member's row and checkpoint are written on an I/O thread (fsync waits, not CPU,
        # dominate: measured 8 ms wall, 0.9 ms CPU per atomic write here) while the next members
        # are evaluated; all are on disk when this returns, each member's row before its checkpoint.
        writes = []
        try:
            for i, (m, recipe) in enumerate(zip(members, recipes)):
                if m.failed or not self._check_finite(m, step_losses[i].cpu(), epoch):
                    continue
                m.loss_fn.end_epoch()
                terms = self._epoch_terms(m, recipe, epoch)
                if not self.dist.is_main:
                    continue
                row = {"epoch": epoch + 1, "lr": m.optimizer.param_groups[0]["lr"],
                       "train_loss": step_losses[i].mean().item(),
                       "train_top1": 100.0 * correct[i].item() / len(train),   # on augmented batches, training labels
                       "train_time_s": elapsed / active,
                       **(self._evaluate(m) if evaluates(recipe, epoch + 1) else {})}
                m.rng_state = torch.get_rng_state()    # as at this member's epoch end
                if self.io_threads:
                    writes.append(_io_pool().submit(self._write_epoch, m, row, epoch + 1, terms))
                else:
                    self._write_epoch(m, row, epoch + 1, terms)
                self._log(m, row)
        finally:
            for w in writes:          # every write finishes (or fails) before anything else happens
                w.exception()
            for m in members:
                m.rng_state = None
                m.terms = {}              # a diverged member's step values too
        for w in writes:
            w.result()                # the first failure is raised here

    def _autocast(self):
        import contextlib

        return torch.autocast("cuda", dtype=torch.bfloat16) if self.fast else contextlib.nullcontext()

    def _stacked_step(self, st, rows, recipes, x, y, zt, epoch, step, steps, progress, step_losses, correct):
        """One step of one stack `st`; `rows` are its members' rows in step_losses / correct."""
        members = st.members
        if all(m.failed for m in members):
            return
        st.set_lr(lr_at(recipes[rows[0]], epoch, step, steps))
        for m in members:
            m.loss_fn.set_progress(progress)
        with self._autocast():
            zs_all = st.forward(x)
        losses = [self._objective(m, recipes[r], zs_all[i], zt, y, epoch) for i, (m, r) in enumerate(zip(members, rows))]
        st.optimizer.zero_grad(set_to_none=True)
        sum(l for l, m in zip(losses, members) if not m.failed).backward()   # a NaN member trains no further
        st.optimizer.step()
        if zt is not None:
            for m in members:
                m.loss_fn.observe_teacher(zt, y)
        rows = torch.tensor(rows, device=step_losses.device)
        step_losses[rows, step] = torch.stack(losses).detach()
        correct[rows] += (zs_all.detach().argmax(2) == y).sum(1)

    def _objective(self, m: Member, recipe, zs, zt, y, epoch: int) -> torch.Tensor:
        if zt is None:
            total = m.loss_fn(zs, None, y)
            self._note_terms(m, {})
            return total
        kd = m.loss_fn(zs, zt, y)
        total = recipe.kd_weight * kd_ramp(recipe, epoch) * kd
        parts = {"distill": kd}
        if recipe.ce_weight:
            parts["label_ce"] = F.cross_entropy(zs.float(), y)
            total = total + recipe.ce_weight * parts["label_ce"]
        self._note_terms(m, parts)
        return total

    @staticmethod
    def _note_terms(m: Member, parts: dict) -> None:
        """Keep this step's loss terms (detached, no device sync) for the epoch's TensorBoard means."""
        for name, value in {**getattr(m.loss_fn, "terms", {}), **parts}.items():
            m.terms.setdefault(name, []).append(value.detach())

    def _epoch_terms(self, m: Member, recipe, epoch: int) -> dict:
        """The epoch's mean of each loss term (one sync per epoch), and the distillation weight
        with its warm-up; the step values are dropped."""
        terms = {name: torch.stack(values).float().mean().item() for name, values in m.terms.items()}
        m.terms = {}
        if self.teachers:
            terms["distill_weight"] = recipe.kd_weight * kd_ramp(recipe, epoch)
        return terms

    def _check_finite(self, m: Member, losses: torch.Tensor, epoch: int) -> bool:
        """False (and the member stopped, with failed.json) when a step loss of this epoch was not
        finite: its checkpoint of the epoch before stays the last good one."""
        bad = (~torch.isfinite(losses)).nonzero()
        if not len(bad):
            return True
        step = bad[0].item()
        kept = (f"its last good checkpoint (epoch {epoch}) is kept in {m.rundir.path}" if epoch > 0 else
                f"it diverged in its first epoch, so no checkpoint exists ({m.rundir.path})")
        m.failed = (f"run {m.config.run_id} diverged: loss became {losses[step].item()} at epoch {epoch + 1}, "
                    f"step {step + 1}; {kept}")
        if self.dist.is_main:
            m.rundir.mark_failed(m.failed, epoch + 1)
        if not self.quiet:
            print(f"[{m.config.display_name}] {m.failed}", file=sys.stderr, flush=True)
        return False

    def _evaluate(self, m: Member) -> dict:
        preds = predict(m.model, self.bundle.test, EVAL_BATCH, self.device)
        row = classification_metrics(preds.logits, self.bundle.test.labels)
        row["feature_norm"] = preds.feature_norms.mean().item()
        if self.teacher_test is not None:
            row |= agreement_metrics(preds.logits, self.teacher_test)
        return row

    def _log(self, m: Member, row: dict) -> None:
        line = (f"[{m.config.display_name}] epoch {row['epoch']}/{self.epochs} loss {row['train_loss']:.4f} "
                f"train {row['train_top1']:.2f}"
                + (f" test {row['test_top1']:.2f}" if "test_top1" in row else "")
                + (f" agree {row['agree_top1']:.2f}" if "agree_top1" in row else ""))
        with open(m.rundir.path / "log.txt", "a") as f:
            f.write(line + "\n")
        if not self.quiet and (row["epoch"] % self.log_every == 0 or row["epoch"] == self.epochs):
            print(line, flush=True)

    def _finish(self, m: Member) -> None:
        rows = m.rundir.metrics()
        if [r["epoch"] for r in rows] != list(range(1, self.epochs + 1)):   # the summary covers every epoch
            raise RuntimeError(f"{m.rundir.metrics_file} holds epochs {[r['epoch'] for r in rows]}, "
                               f"not 1..{self.epochs}: refusing to write a summary")
        preds = predict(m.model, self.bundle.test, EVAL_BATCH, self.device, feature_rows=FEATURE_ROWS)
        atomic_torch_save({"logits": preds.logits.cpu(), "labels": self.bundle.test.labels.cpu(),
                           "features": preds.features.cpu(), "feature_norms": preds.feature_norms.cpu(),
                           "teacher_logits": None if self.teacher_test is None else self.teacher_test.cpu()},
                          m.rundir.path / "outputs.pt")
        clone = self.stacked is not None      # stacked: views of the stack; save this member's values only
        sha = m.rundir.save_model({k: v.cpu().clone() if clone else v.cpu() for k, v in m.model.state_dict().items()})
        m.rundir.write_summary(summarize(rows) | {
            "run_id": m.config.run_id, "model_sha256": sha,
            "params": sum(p.numel() for p in m.model.parameters()),
            "precision": "bf16-autocast" if self.fast else "fp32", **self._stack_summary(m),
            "world_size": self.dist.world,
            **({"teacher_cache": self.teacher_bank.describe()} if hasattr(self.teacher_bank, "describe") else {}),
            "teachers": [{"run_id": t.run_id, "sha256": t.sha256, "recorded_top1": t.recorded_top1}
                         for t in self.teachers]})


_IO_POOL = None


def _io_pool():
    """Threads for run-directory writes (one chain per member and epoch: row, then checkpoint)."""
    global _IO_POOL
    if _IO_POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _IO_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="logit-kd-io")
    return _IO_POOL


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def compile_mode(value) -> str | None:
    """Normalise the `compile` option: False/None -> None (off), True -> "default", else a mode."""
    if value is None or value is False:
        return None
    if value is True:
        return "default"
    if value not in COMPILE_MODES:
        raise UserError(f"unknown compile mode '{value}'; known: {', '.join(COMPILE_MODES)}")
    return value


def _observes(loss_fn) -> bool:
    """Whether the loss keeps per-batch teacher state (IKL class prior): then, distributed, it
    must see the global batch."""
    from losses.base import DistillLoss

    hook = getattr(type(loss_fn), "observe_teacher", None)
    return hook is not None and hook is not DistillLoss.observe_teacher


def summarize(rows: list[dict]) -> dict:
    """Last epoch, mean of the last 10 epochs, and best epoch (by test top-1, among the evaluated
    epochs: see `Recipe.eval_every`), each labelled."""
    if not rows:
        return {"epochs": 0, "final": {}, "last10_mean": {}, "best": {}}
    tail = rows[-10:]
    keys = [k for k, v in rows[-1].items()
            if isinstance(v, (int, float)) and k != "epoch" and all(k in r for r in tail)]
    evaluated = [r for r in rows if "test_top1" in r]
    best = max(evaluated, key=lambda r: r["test_top1"]) if evaluated else {"epoch": None, "test_top1": None}
    return {"epochs": rows[-1]["epoch"], "final": rows[-1],
            "last10_mean": {k: sum(r[k] for r in tail) / len(tail) for k in keys} | {"epochs": len(tail)},
            "best": {"epoch": best["epoch"], "test_top1": best["test_top1"], "of_epochs": len(evaluated)},
            "train_time_s": sum(r.get("train_time_s", 0.0) for r in rows)}


def train_group(configs: list[RunConfig], *, force=False, wait=True, **kwargs) -> list[RunDir]:
    """Train the unfinished runs of `configs` together; finished ones are skipped (force: redone),
    after checking that their weights are intact.

    Everything is validated first (engine.validate: configs, data, models, teachers); then the
    runs' locks are taken for the whole training: another process holding one is waited for
    (wait=True, the default; a run it finished meanwhile is skipped) or refused in one line
    (wait=False). A run whose loss becomes NaN stops with failed.json; the others finish, then
    TrainingDiverged names the diverged ones."""
    from engine.validate import Checker

    ctx = distributed.context(kwargs.get("device", "auto"))
    # distributed: every rank decides from the same files (none is written before this barrier)
    ctx.barrier()
    resolve_device(distributed.resolve_device(kwargs.get("device", "auto"), ctx))
    todo = [c for c in configs if force or not _finished(RunDir(c))]
    if not todo:
        return [RunDir(c) for c in configs]
    for c in todo:
        if c.imported:
            raise UserError(f"run {c.run_id} holds released weights, it is never trained; import it: "
                            f"{import_command(c)}")
    check_group(todo)
    checker = Checker(kwargs.get("data_root"), kwargs.get("download", False))
    with ctx.rank_zero_first():               # rank 0 may write data caches while building
        checker.check_all(todo)
    # a wait is always said (even quiet): a silent one would look like a hang
    with hold([RunDir(c).path for c in todo] if ctx.is_main else [], wait=wait, say=print):
        # another process may have finished some while we waited
        todo = _same_on_every_rank(ctx, [c for c in todo if force or not RunDir(c).finished])
        # Runs resumed from different epochs cannot share batches: train each part separately.
        by_start = {}
        for c in todo:
            rd = RunDir(c)
            start = rd.load_checkpoint()["epoch"] if rd.started and not force else 0
            by_start.setdefault(start, []).append(c)
        diverged = []
        for group in by_start.values():
            bundle = checker.bundle(group[0].dataset, group[0].dataset_options)
            try:
                Trainer(group, force=force, bundle=bundle, **kwargs).run()
            except TrainingDiverged as e:        # the other parts still train
                diverged.append(str(e))
        if diverged:
            raise TrainingDiverged("; ".join(diverged))
    return [RunDir(c) for c in configs]


def _finished(rd: RunDir) -> bool:
    """Finished and intact (summary readable, weights matching their checksum)."""
    if not rd.finished:
        return False
    rd.verify()
    return True


def _same_on_every_rank(ctx, configs: list[RunConfig]) -> list[RunConfig]:
    """Rank 0's list (it alone holds the locks and re-checked the files under them)."""
    if not ctx.enabled:
        return configs
    ids = [[c.run_id for c in configs]]
    torch.distributed.broadcast_object_list(ids, src=0)
    return [c for c in configs if c.run_id in set(ids[0])]


def train(config: RunConfig, **kwargs) -> RunDir:
    return train_group([config], **kwargs)[0]
