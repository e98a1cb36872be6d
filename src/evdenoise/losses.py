"""Training losses, by name: each turns (prediction, label, input) into per-cell errors and weights.

``loss_terms`` returns (sum of weighted per-cell losses, sum of weights); the loss is their ratio,
so validation can add both over batches and ranks before dividing.
"""
from __future__ import annotations

from typing import Protocol
from collections.abc import Callable

import torch
from torch import nn


class LossSettings(Protocol):
    """The training settings a loss reads (``TrainConfig`` has them)."""

    loss: str
    huber_delta: float
    empty_weight: float
    changed_weight: float


# (pred, label, raw, settings) -> (per-cell error, per-cell weight)
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, LossSettings], tuple[torch.Tensor, torch.Tensor]]
LOSSES: dict[str, LossFn] = {}


def register(name: str) -> Callable[[LossFn], LossFn]:
    def add(fn: LossFn) -> LossFn:
        LOSSES[name] = fn
        return fn
    return add


def _count_weights(err: torch.Tensor, raw: torch.Tensor, label: torch.Tensor, s: LossSettings) -> torch.Tensor:
    """Cells where raw and label are both empty get ``empty_weight``, all others 1."""
    weight = torch.ones_like(err)
    if s.empty_weight != 1.0:
        weight = torch.where((raw == 0) & (label == 0), s.empty_weight, weight)
    return weight


@register("mse")
def _mse(pred: torch.Tensor, label: torch.Tensor, raw: torch.Tensor, s: LossSettings
         ) -> tuple[torch.Tensor, torch.Tensor]:
    err = (pred - label) ** 2
    return err, _count_weights(err, raw, label, s)


@register("l1")
def _l1(pred: torch.Tensor, label: torch.Tensor, raw: torch.Tensor, s: LossSettings
        ) -> tuple[torch.Tensor, torch.Tensor]:
    err = (pred - label).abs()
    return err, _count_weights(err, raw, label, s)


@register("huber")
def _huber(pred: torch.Tensor, label: torch.Tensor, raw: torch.Tensor, s: LossSettings
           ) -> tuple[torch.Tensor, torch.Tensor]:
    err = nn.functional.huber_loss(pred, label, reduction="none", delta=s.huber_delta)
    return err, _count_weights(err, raw, label, s)


@register("keep_bce")
def _keep_bce(pred: torch.Tensor, label: torch.Tensor, raw: torch.Tensor, s: LossSettings
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """What the ``mask`` decoder does with a prediction, scored per input cell.

    The binary cross-entropy of the kept share ``pred / raw`` against the clean share ``label / raw``
    (both clipped to [0, 1]), weighted by the cell's ``|raw|`` so every input event counts once.
    MSE on counts instead weighs a cell by its count squared, so dense flare outweighs the sparse
    real events that the point-cloud and F1 metrics count one by one. Cells without input carry
    no weight (nothing there to keep).
    """
    has = raw != 0
    safe = torch.where(has, raw, torch.ones_like(raw))
    target = (label / safe).clamp(0.0, 1.0)
    share = (pred / safe).clamp(1e-6, 1.0 - 1e-6)
    err = nn.functional.binary_cross_entropy(share, target, reduction="none")
    return err, raw.abs()


def loss_terms(pred: torch.Tensor, label: torch.Tensor, raw: torch.Tensor, s: LossSettings
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of weighted per-cell losses, sum of weights) of the loss ``s.loss``.

    ``mse``/``l1``/``huber`` compare counts; ``keep_bce`` kept shares (see its function). Cells the
    model must change (raw != label) have their weight multiplied by ``changed_weight``.
    """
    err, weight = LOSSES[s.loss](pred.float(), label.float(), raw.float(), s)
    if s.changed_weight != 1.0:
        weight = torch.where(raw.float() != label.float(), s.changed_weight * weight, weight)
    return (weight * err).sum(), weight.sum()
