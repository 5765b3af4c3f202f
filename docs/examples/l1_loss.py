"""A loss of your own in one file: the L1 distance between student and teacher logits.

    python -m reproduce.compare table --plugin docs/examples/l1_loss.py --method l1:ce_weight=0.5
"""
from losses import LOSSES, DistillLoss
from losses.base import check_positive


@LOSSES.register("l1")
class L1(DistillLoss):
    """scale * mean over classes of |z_s - z_t|, mean over the batch."""
    name = "l1"
    short = "L1"

    def __init__(self, scale: float = 1.0):
        self.scale = check_positive("l1", "scale", scale)   # a bad value is one line (UserError)
        super().__init__(scale=self.scale)

    def forward(self, zs, zt, targets):
        loss = self.scale * (zs - zt).abs().mean()
        self.terms = {"l1": loss.detach()}                  # logged per epoch (metrics, TensorBoard)
        return loss
