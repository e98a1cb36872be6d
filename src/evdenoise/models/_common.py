"""Shape checks and kernel settings shared by the voxel models (input layout (N, C, B, H, W))."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def check_voxels(x: torch.Tensor, in_channels: int, model: str) -> None:
    """Raise a ValueError naming the model unless ``x`` is a (N, C, B, H, W) batch with C = ``in_channels``."""
    if x.ndim != 5:
        raise ValueError(f"{model}: expected a 5-D voxel batch (N, C, B, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(
            f"{model}: built for in_channels={in_channels}, got {x.shape[1]} channels (shape {tuple(x.shape)})"
        )
    if min(x.shape) == 0:
        raise ValueError(f"{model}: empty voxel batch of shape {tuple(x.shape)}")


def prod_per_axis(kernels: Sequence[Sequence[int]], ndim: int = 3) -> tuple[int, ...]:
    """Total down-sampling factor per axis of a stack of pooling kernels / strides."""
    return tuple(math.prod(k[a] for k in kernels) for a in range(ndim))


def as_kernel_list(value: object, count: int, what: str, model: str) -> list[tuple[int, int, int]]:
    """Validate ``count`` positive 3-int kernels (one per level); a single kernel is repeated for every level."""
    if isinstance(value, Sequence) and len(value) == 3 and all(isinstance(v, int) for v in value):
        value = [value] * count
    if not isinstance(value, Sequence) or len(value) != count:
        raise ValueError(f"{model}: {what} must be one (t, h, w) kernel or a list of {count}, got {value!r}")
    kernels = []
    for k in value:
        if not (isinstance(k, Sequence) and len(k) == 3 and all(isinstance(v, int) and v >= 1 for v in k)):
            raise ValueError(f"{model}: each {what} entry must be three positive ints (t, h, w), got {k!r}")
        kernels.append((int(k[0]), int(k[1]), int(k[2])))
    return kernels


# How a model's last layer becomes its prediction. "residual": input + correction (zero head: the identity
# at init); "gate": input x sigmoid(head), a per-cell share of the input's events to keep (the head starts
# at GATE_BIAS); "direct": the head is the prediction.
OUTPUTS = ("residual", "gate", "direct")
# A fresh gate keeps half of every cell: sigmoid is steepest at 0, and starting there learned faster than
# starting near "keep all" (sigmoid(3) = 95 %): validation loss after 150 steps 0.29 vs 0.36 (mean of 3 seeds),
# and better held-out scores after 1000 (docs/ablations.md, "Round 3").
GATE_BIAS = 0.0


def check_output(output: object, model: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"{model}: output must be one of {OUTPUTS}, got {output!r}")
    return str(output)


def init_head(head: nn.Module, output: str) -> None:
    """Initialise the last convolution for ``output`` (``"direct"`` keeps PyTorch's default init)."""
    if output == "direct":
        return
    nn.init.zeros_(head.weight)
    nn.init.constant_(head.bias, GATE_BIAS if output == "gate" else 0.0)


def apply_output(head_out: torch.Tensor, x: torch.Tensor, output: str) -> torch.Tensor:
    """The prediction from the head's output and the (padded) input ``x`` of the same shape."""
    if output == "residual":
        return x + head_out
    if output == "gate":
        # A gate can only remove: the prediction keeps the input's sign and is never above it.
        return x * torch.sigmoid(head_out)
    return head_out
