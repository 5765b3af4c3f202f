"""`ce`: plain cross-entropy on the hard labels; the teacher is ignored.

    L = -(1/B) sum_b log softmax(z_s,b)[y_b]

Used to train teachers and the no-distillation baselines (all three papers).
"""
from losses.base import LOSSES, DistillLoss, cross_entropy


@LOSSES.register("ce")
class CE(DistillLoss):
    """Cross-entropy with the ground-truth labels; `teacher_logits` may be None."""

    name = "ce"
    short = "CE"
    uses_teacher = False

    def __init__(self):
        super().__init__()

    def forward(self, zs, zt, targets):
        loss = cross_entropy(zs, targets)
        self.terms = {"ce": loss.detach()}
        return loss
