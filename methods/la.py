"""Logit-adjusted loss (Menon et al., ICLR 2021) and its post-hoc form.

`la` trains with cross-entropy on logits + tau * log(pi), pi the class prior of the training
batches, so the learned logits estimate the balanced posterior; at tau = 1 it is Balanced Softmax
(Ren et al., NeurIPS 2020), whose softmax multiplies exp(z_c) by n_c: adding log n_c and adding
log(n_c / N) differ by a constant that softmax removes (`tests/test_methods.py` shows the two equal).
`pla` trains nothing differently and subtracts tau * log(pi) from the logits at evaluation;
tau is chosen on the validation split when the run holds one out, else it is 1.

Compared with: Menon et al.'s Eq. 10 by hand and Balanced Softmax (Ren et al.) at tau 1
(tests/test_baselines.py); BCL's `LogitAdjust` (FlamieZhu/Balanced-Contrastive-Learning) run on the same
random inputs gives the same loss to 6e-8 and gradient to 1e-9 (results/reference_checks.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Criterion, Posthoc, TrainContext, hp, register

TAU_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


@register
class LogitAdjusted(Criterion):
    name = "la"
    summary = "logit-adjusted cross-entropy: CE(logits + tau log prior); tau=1 is Balanced Softmax"
    paper = "Menon et al., Long-tail learning via logit adjustment, ICLR 2021"
    corrects_prior = True
    search_space = {"tau": (0.5, 1.0, 2.0)}
    tau: float = hp(1.0, ge=0)

    def setup(self, ctx: TrainContext) -> None:
        # The prior the loss sees: the batches' (a re-balancing sampler is refused with `la`, so this
        # is the training prior; taking the batch prior keeps the adjustment right for any sampler).
        self.log_prior = torch.log(torch.tensor(ctx.batch_prior, dtype=torch.float32, device=ctx.device))

    def class_losses(self, logits):
        return -F.log_softmax(logits + self.tau * self.log_prior, dim=1)


@register
class PosthocLogitAdjustment(Posthoc):
    name = "pla"
    summary = "post-hoc logit adjustment: logits - tau log prior at evaluation (tau chosen on validation)"
    paper = "Menon et al., Long-tail learning via logit adjustment, ICLR 2021 (post-hoc form)"
    corrects_prior = True
    choice = "tau"
    tau: float = hp(1.0, ge=0)

    def setup(self, ctx: TrainContext) -> None:
        self.log_prior = torch.log(torch.tensor(ctx.prior, dtype=torch.float32))

    def grid(self):
        return TAU_GRID

    def apply(self, logits, features, model, value):
        return logits - value * self.log_prior.to(logits.device)
