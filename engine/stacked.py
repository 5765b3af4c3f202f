"""Stacked students: the runs of a group that share an architecture train as one model.

The parameters of N same-architecture students are stacked along a new leading dimension
(N, ...); one `torch.func.vmap` over `functional_call` runs every layer once for all N
students (a convolution becomes one grouped convolution, a linear layer one batched matmul),
the N losses are summed and one backward pass gives each student its own gradient (the
students share nothing, so d(sum)/d(theta_i) = d(loss_i)/d(theta_i)); one optimizer steps the
stacked tensors. SGD and Adam are elementwise, so stepping the stack equals stepping each
student alone.

Each member's `nn.Module` keeps working: its parameters are re-pointed at slices of the
stacked storage (`p.data = stack[i]`), so evaluation, checkpoints and the final weights read
the current values. The member optimizers hold the state only at checkpoints
(`export_state`), in the ordinary per-model format, so a stacked run resumes alone and a
single run resumes stacked.

Exactness: vmap reorders no sum within one student, but the batched kernels (grouped
convolution, bmm) may block their sums differently from the per-model kernels, so stacked
and separate runs agree to float32 rounding (tested with a tolerance), not bit for bit.
Stacking applies only to models without buffers (no BatchNorm running statistics) and without
dropout, with the same optimizer settings for every member; other groups use the plain loop.
"""
from __future__ import annotations

import torch
from torch.func import functional_call, vmap

OPTIMIZER_KEYS = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "wd_exempt_bn_bias",
                  "schedule", "milestones", "gamma", "epochs", "batch_size")


def stack_reason(members) -> str | None:
    """None when `members` can train stacked, else why not (for logs)."""
    if len(members) < 2:
        return "a single run"
    first = members[0]
    for m in members[1:]:
        if (m.config.model, m.config.model_options) != (first.config.model, first.config.model_options):
            return "different architectures"
        if any(m.config.recipe.get(k) != first.config.recipe.get(k) for k in OPTIMIZER_KEYS):
            return "different optimizer settings"
    model = first.model
    if any(True for _ in model.buffers()):
        return "the model has buffers (BatchNorm running statistics)"
    if any(isinstance(mod, torch.nn.modules.dropout._DropoutNd) for mod in model.modules()):
        return "the model has dropout"
    return None


class StackedStudents:
    def __init__(self, members, recipe, optimizer_factory):
        self.members = members
        self.base = members[0].model
        self.names = [n for n, _ in self.base.named_parameters()]
        per_member = [dict(m.model.named_parameters()) for m in members]
        self.params = {}
        for n in self.names:
            stacked = torch.stack([pm[n].detach() for pm in per_member]).clone().requires_grad_(True)
            self.params[n] = stacked
            for i, pm in enumerate(per_member):
                pm[n].data = stacked.data[i]          # the member's module reads the stack
        self.optimizer = optimizer_factory([(n, self.params[n], per_member[0][n].ndim) for n in self.names], recipe)
        self._import_state()

        def one(params, x):
            return functional_call(self.base, params, (x,)).logits

        self._forward = vmap(one, in_dims=(0, None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, B, C) logits of every student on the same batch."""
        return self._forward(self.params, x)

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
