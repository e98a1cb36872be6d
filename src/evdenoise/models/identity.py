"""The identity baseline: returns its input, the floor every model must beat."""
from __future__ import annotations

import torch
from torch import nn

from ..defaults import CHANNELS
from .registry import register


class Identity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        # One parameter so optimisers and checkpoints treat it like any model.
        self.scale = nn.Parameter(torch.ones(()), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


@register("identity")
def build_identity(in_channels: int = CHANNELS, **_: object) -> nn.Module:
    return Identity()
