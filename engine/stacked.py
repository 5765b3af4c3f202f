"""Stacked students: the runs of a group that share an architecture train as one model.

The parameters of N same-architecture students are stacked along a new leading dimension
(N, ...); one `torch.func.vmap` over `functional_call` runs every layer once for all N
students (a convolution becomes one grouped convolution, a linear layer one batched matmul),
the N losses are summed and one backward pass gives each student its own gradient (the
students share nothing, so d(sum)/d(theta_i) = d(loss_i)/d(theta_i)); one optimizer steps the
stacked tensors. SGD and Adam are elementwise, so stepping the stack equals stepping each
student alone.

BatchNorm: the buffers (running mean and variance, num_batches_tracked) are stacked too and
passed to `functional_call` batched, so each student normalises with its own batch statistics
and torch's batch-norm batching rule updates each student's running statistics in place, as
nn.BatchNorm would (momentum, unbiased variance of the batch for the running variance,
num_batches_tracked + 1). Needs a fixed momentum (momentum=None, the cumulative average, reads
num_batches_tracked as a Python number per student) and track_running_stats.

Each member's `nn.Module` keeps working: its parameters and buffers are re-pointed at slices of
the stacked storage (`t.data = stack[i]`), so evaluation (in eval mode, each member with its own
running statistics), checkpoints and the final weights read the current values. The member
optimizers hold the state only at checkpoints (`export_state`), in the ordinary per-model format,
so a stacked run resumes alone and a single run resumes stacked.

Groups of several architectures: `plan_stacks` partitions the members by architecture and
optimizer settings; every part of two or more members that can stack becomes one
`StackedStudents`, the others train in the plain loop beside them (`Stacks`).

Exactness: vmap reorders no sum within one student, but the batched kernels (grouped
convolution, bmm) may block their sums differently from the per-model kernels, so stacked
and separate runs agree to float32 rounding (tested with a tolerance), not bit for bit.
Not stackable: dropout, buffers other than BatchNorm statistics, different optimizer settings.
"""
from __future__ import annotations

import json

import torch
from torch.func import functional_call, vmap

OPTIMIZER_KEYS = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "wd_exempt_bn_bias",
                  "schedule", "milestones", "gamma", "epochs", "batch_size")
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def model_reason(model: torch.nn.Module) -> str | None:
    """None when this architecture can train stacked, else why not."""
    if any(isinstance(mod, torch.nn.modules.dropout._DropoutNd) for mod in model.modules()):
        return "the model has dropout"
    bn_buffers = set()
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.modules.batchnorm._NormBase):
            if mod.track_running_stats and mod.momentum is None:
                return f"BatchNorm {name} uses a cumulative average (momentum=None)"
            bn_buffers |= {f"{name}.{b}" if name else b for b, t in mod.named_buffers(recurse=False) if b in BN_BUFFERS}
    other = [n for n, _ in model.named_buffers() if n not in bn_buffers]
    if other:
        return f"the model has buffers other than BatchNorm statistics ({', '.join(other[:3])})"
    return None


def _key(m) -> tuple:
    c = m.config
    return (c.model, json.dumps(c.model_options, sort_keys=True, default=str),
            tuple(json.dumps(c.recipe.get(k), default=str) for k in OPTIMIZER_KEYS))


def stack_reason(members) -> str | None:
    """None when all of `members` can train as one stack, else why not (for logs)."""
    if len(members) < 2:
        return "a single run"
    first = members[0]
    for m in members[1:]:
        if (m.config.model, m.config.model_options) != (first.config.model, first.config.model_options):
            return "different architectures"
        if any(m.config.recipe.get(k) != first.config.recipe.get(k) for k in OPTIMIZER_KEYS):
            return "different optimizer settings"
    return model_reason(first.model)


def partition(members) -> list[list]:
    """Members grouped by architecture (+ options) and optimizer settings, in their order."""
    parts: dict[tuple, list] = {}
    for m in members:
        parts.setdefault(_key(m), []).append(m)
    return list(parts.values())


class Stacks:
    """The stacked parts of a group (`groups`, each a StackedStudents) and the members that train
    in the plain loop (`plain`)."""

    def __init__(self, groups: list, members: list):
        self.groups = groups
        stacked = {id(m) for st in groups for m in st.members}
        self.plain = [m for m in members if id(m) not in stacked]
        self._of = {id(m): st for st in groups for m in st.members}

    def of(self, member):
        return self._of.get(id(member))

    def export_state(self) -> None:
        for st in self.groups:
            st.export_state()


class StackedStudents:
    def __init__(self, members, recipe, optimizer_factory):
        self.members = members
        self.base = members[0].model
        self.names = [n for n, _ in self.base.named_parameters()]
        self.buffer_names = [n for n, _ in self.base.named_buffers()]
        per_member = [dict(m.model.named_parameters()) for m in members]
        self.params = {}
        for n in self.names:
            stacked = torch.stack([pm[n].detach() for pm in per_member]).clone().requires_grad_(True)
            self.params[n] = stacked
            for i, pm in enumerate(per_member):
                pm[n].data = stacked.data[i]          # the member's module reads the stack
        self.buffers = {}
        member_buffers = [dict(m.model.named_buffers()) for m in members]
        for n in self.buffer_names:
            stacked = torch.stack([mb[n].detach() for mb in member_buffers]).clone()
            self.buffers[n] = stacked
            for i, mb in enumerate(member_buffers):
                mb[n].data = stacked[i]               # running statistics: updated in place, read by eval
        self.optimizer = optimizer_factory([(n, self.params[n], per_member[0][n].ndim) for n in self.names], recipe)
        self._import_state()

        def one(params, buffers, x):
            return functional_call(self.base, (params, buffers), (x,)).logits

        self._forward = vmap(one, in_dims=(0, 0, None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, B, C) logits of every student on the same batch (training mode: BatchNorm uses the
        batch statistics and updates each student's running statistics)."""
        return self._forward(self.params, self.buffers, x)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    # ------------------------------------------------------------ optimizer state
    def _member_state(self, m):
        return [m.optimizer.state.get(p) for p in dict(m.model.named_parameters()).values()]

    def _import_state(self) -> None:
        """Stack the members' optimizer states (after a resume); nothing to do when fresh."""
        states = [self._member_state(m) for m in self.members]
        for j, n in enumerate(self.names):
            per = [s[j] for s in states]
            if any(p is None or not p for p in per):
                continue
            stacked = {}
            for key, value in per[0].items():
                if torch.is_tensor(value) and value.shape == self.params[n].shape[1:] and value.ndim > 0:
                    stacked[key] = torch.stack([p[key] for p in per]).clone()
                else:
                    stacked[key] = value.clone() if torch.is_tensor(value) else value
            self.optimizer.state[self.params[n]] = stacked

    def export_state(self) -> None:
        """Write the stacked optimizer state into each member's optimizer (before checkpoints)."""
        for i, m in enumerate(self.members):
            params = dict(m.model.named_parameters())
            for group in m.optimizer.param_groups:
                group["lr"] = self.optimizer.param_groups[0]["lr"]
            for n in self.names:
                st = self.optimizer.state.get(self.params[n])
                if not st:
                    continue
                m.optimizer.state[params[n]] = {
                    k: (v[i].clone() if torch.is_tensor(v) and v.ndim > 0 and v.shape == self.params[n].shape
                        else v.clone() if torch.is_tensor(v) else v)
                    for k, v in st.items()}
