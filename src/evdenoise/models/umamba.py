"""U-Mamba (bottleneck variant): the residual 3-D U-Net of ``unet3d`` with a Mamba state-space block on its
deepest features, for context across the whole window at linear cost in the number of tokens.

Runs on CPU through the pure-PyTorch ``mambapy`` (parallel scan). The deepest feature map is average-pooled
by ``token_pool`` before the scan so the token count (and the scan's memory, tokens x 2*channels x d_state)
stays small at 640x480; the Mamba output is up-sampled back and added to the features. Tokens are scanned
in (y, x, t) raster order, and with ``bidirectional`` also in reverse with the same weights, so every voxel
sees context from both sides.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mambapy.mamba import Mamba, MambaConfig
from torch import nn

from ._common import as_kernel_list
from .registry import register
from .unet3d import F_MAPS, UNet3D


class MambaBottleneck(nn.Module):
    """Pool to tokens, run Mamba over them, project, up-sample, add to the input features."""

    def __init__(
        self,
        channels: int,
        n_layers: int = 1,
        d_state: int = 16,
        expand: int = 2,
        token_pool: Sequence[int] = (2, 2, 2),
        bidirectional: bool = True,
    ) -> None:
        super().__init__()
        kt, kh, kw = as_kernel_list(token_pool, 1, "token_pool", "umamba")[0]
        self.token_pool = (kh, kw, kt)  # the U-Net's internal layout is (N, C, H, W, B)
        self.bidirectional = bidirectional
        self.mamba = Mamba(MambaConfig(d_model=channels, n_layers=n_layers, d_state=d_state, expand_factor=expand))
        self.norm = nn.LayerNorm(channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Clamp to the map (tiny inputs) and keep partial border windows (ceil_mode) rather than drop voxels.
        kernel = tuple(min(k, s) for k, s in zip(self.token_pool, x.shape[2:]))
        tokens = F.avg_pool3d(x, kernel, ceil_mode=True)
        n, c = tokens.shape[:2]
        grid = tokens.shape[2:]
        seq = tokens.flatten(2).transpose(1, 2)  # (N, L, C)
        out = self.mamba(seq)
        if self.bidirectional:
            out = out + self.mamba(seq.flip(1)).flip(1)
        out = self.proj(self.norm(out)).transpose(1, 2).reshape(n, c, *grid)
        return x + F.interpolate(out, size=x.shape[2:], mode="nearest")


@register("umamba")
def build_umamba(
    mamba_layers: int = 1,
    d_state: int = 16,
    expand: int = 2,
    token_pool: Sequence[int] = (2, 2, 2),
    bidirectional: bool = True,
    **unet_kwargs: Any,
) -> nn.Module:
    """unet3d (same settings, ``unet_kwargs``) with a Mamba bottleneck on f_maps[-1] channels."""
    f_maps = unet_kwargs.get("f_maps", F_MAPS)
    if not f_maps:
        raise ValueError("umamba: f_maps must be a non-empty list of positive ints")
    for key, value in (("mamba_layers", mamba_layers), ("d_state", d_state), ("expand", expand)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"umamba: {key} must be a positive int, got {value!r}")
    bottleneck = MambaBottleneck(f_maps[-1], mamba_layers, d_state, expand, token_pool, bidirectional)
    return UNet3D(**unet_kwargs, bottleneck=bottleneck, name="umamba")
