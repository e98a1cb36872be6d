"""Residual 3-D U-Net on voxel grids (N, C, B, H, W), sized for CPUs and short time axes.

Encoder: a residual block per level, max-pooling between levels with a kernel per level (default (1, 2, 2):
the 8-bin time axis is never pooled away). Decoder: 1x1x1 channel reduction at low resolution, nearest
up-sampling, summation with the skip, a residual block. ``output`` (see ``_common.OUTPUTS``) says how the last
1x1x1 convolution becomes the prediction: ``"residual"`` (zero-initialised and added to the input, so a fresh
model is exactly the identity and learns a correction), ``"gate"`` (a per-cell share of the input to keep: the
input times a sigmoid; what the ``mask`` decoder does with events) or ``"direct"``.
``factorised=True`` swaps every 3x3x3 convolution for a (2+1)-D pair: spatial 1x3x3 then temporal 3x1x1.

Speed on CPU: inside the network the time axis is moved last, (N, C, H, W, B), because PyTorch sends batch-1
3-D convolutions whose N*C*D*H is small to its slow native kernel instead of oneDNN (3-7x slower here); with H
in front of the 8 bins every convolution takes the oneDNN path. ``space_to_depth=s`` (default 2) folds each
s x s pixel block into channels before the first convolution and unfolds the output (lossless, as in FFDNet),
so the network runs at half resolution with all information kept. oneDNN convolutions with fewer than 16
channels run ~20x below peak on CPU, so full-resolution
layers with 8 channels are slower than half-resolution layers with 16: keep f_maps >= 16 and use
space_to_depth rather than thin full-resolution layers. The (2+1)-D factorisation cuts the multiply-adds 2.1x
but the time less (its 1x1x3 convolutions run at low efficiency on CPU); see benchmarks/bench_model.py.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..defaults import CHANNELS
from ..voxel import crop_to, pad_to
from ._common import apply_output, as_kernel_list, check_output, check_voxels, init_head, prod_per_axis
from .registry import register


# Defaults (shared with umamba): 4 levels of 16-128 channels at half resolution (space_to_depth 2). Measured on
# 2 CPU threads at 640x480x8 it runs a window ~18x faster than pytorch-3dunet's ResidualUNet3D with E-Deflare's
# settings (benchmarks/bench_model.py); the 4th level gives a receptive field of ~200 px for large flares.
F_MAPS = (16, 32, 64, 128)
POOL_KERNEL = (1, 2, 2)  # (t, h, w): never pool the short time axis
SPACE_TO_DEPTH = 2


def group_count(channels: int, num_groups: int) -> int:
    """Largest divisor of ``channels`` not above ``num_groups`` (GroupNorm needs groups | channels)."""
    return max(g for g in range(1, min(num_groups, channels) + 1) if channels % g == 0)


def conv3(cin: int, cout: int, factorised: bool, dilation: int = 1) -> nn.Module:
    """A 3x3x3 convolution, or its (2+1)-D factorisation (about 2.3x fewer multiply-adds at equal width).

    Blocks work on the internal layout (N, C, H, W, B): spatial 3x3x1 then temporal 1x1x3. ``dilation``
    spreads the spatial taps only (the time axis is 8 bins short).
    """
    d = dilation
    if factorised:
        return nn.Sequential(
            nn.Conv3d(cin, cout, (3, 3, 1), padding=(d, d, 0), dilation=(d, d, 1), bias=False),
            nn.Conv3d(cout, cout, (1, 1, 3), padding=(0, 0, 1), bias=False),
        )
    return nn.Conv3d(cin, cout, 3, padding=(d, d, 1), dilation=(d, d, 1), bias=False)


class ResBlock(nn.Module):
    """conv-GN-ReLU-conv-GN plus a (1x1x1-projected) shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, num_groups: int, factorised: bool, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3(cin, cout, factorised, dilation),
            nn.GroupNorm(group_count(cout, num_groups), cout),
            nn.ReLU(inplace=True),
            conv3(cout, cout, factorised, dilation),
            nn.GroupNorm(group_count(cout, num_groups), cout),
        )
        self.shortcut = nn.Identity() if cin == cout else nn.Conv3d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x), inplace=True)


class UpBlock(nn.Module):
    """Reduce channels at low resolution (cheap), up-sample to the skip's size, sum, refine."""

    def __init__(self, cin: int, cout: int, num_groups: int, factorised: bool) -> None:
        super().__init__()
        self.reduce = nn.Conv3d(cin, cout, 1, bias=False)
        self.block = ResBlock(cout, cout, num_groups, factorised)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.reduce(x), size=skip.shape[2:], mode="nearest")
        return self.block(x + skip)


class ContextBlock(nn.Module):
    """Context for the deepest features: dilated residual blocks, then a global summary added back.

    At 1/16 of the pixels (space_to_depth 2, three 2x pools) each dilated block adds 2 x 2 x d x 16 px of
    receptive field, so dilations (2, 4, 8) reach ~900 px beyond the plain U-Net's ~200: a whole 640x480
    starburst at once. The global branch (mean over the frame and the bins, two 1x1x1 convolutions) tells
    every cell what the whole window holds, e.g. a sensor-wide light change rather than a local flare.
    """

    def __init__(self, channels: int, dilations: Sequence[int], global_context: bool, num_groups: int,
                 factorised: bool) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(ResBlock(channels, channels, num_groups, factorised, d) for d in dilations))
        self.summary = nn.Sequential(
            nn.Conv3d(channels, channels, 1), nn.ReLU(inplace=True), nn.Conv3d(channels, channels, 1),
        ) if global_context else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        if self.summary is not None:
            x = x + self.summary(x.mean(dim=(2, 3, 4), keepdim=True))
        return x


def fold_space(x: torch.Tensor, s: int) -> torch.Tensor:
    """(N, C, B, H, W) -> (N, C*s*s, B, H/s, W/s): each s x s pixel block becomes s*s channels."""
    n, c, b, h, w = x.shape
    x = x.reshape(n, c, b, h // s, s, w // s, s).permute(0, 1, 4, 6, 2, 3, 5)
    return x.reshape(n, c * s * s, b, h // s, w // s)


def unfold_space(x: torch.Tensor, s: int) -> torch.Tensor:
    """Inverse of ``fold_space``."""
    n, cs, b, h, w = x.shape
    x = x.reshape(n, cs // (s * s), s, s, b, h, w).permute(0, 1, 4, 5, 2, 6, 3)
    return x.reshape(n, cs // (s * s), b, h * s, w * s)


@register("unet3d")
class UNet3D(nn.Module):
    """Residual 3-D U-Net mapping (N, C, B, H, W) to the same shape.

    ``pool_kernels`` is one (t, h, w) kernel for every level or a list of len(f_maps)-1.

    ``bottleneck`` (optional) is applied to the deepest features (channels ``f_maps[-1]``, internal layout
    (N, C, H, W, B)), shape-preserving; U-Mamba plugs its state-space block in here. ``context_dilations``
    and ``global_context`` build a :class:`ContextBlock` there instead (receptive field for large flares).
    """

    def __init__(
        self,
        in_channels: int = CHANNELS,
        f_maps: Sequence[int] = F_MAPS,
        pool_kernels: Sequence[Sequence[int]] | Sequence[int] = POOL_KERNEL,
        num_groups: int = 8,
        factorised: bool = False,
        output: str = "gate",
        space_to_depth: int = SPACE_TO_DEPTH,
        bottleneck: nn.Module | None = None,
        context_dilations: Sequence[int] = (),
        global_context: bool = False,
        name: str = "unet3d",
    ) -> None:
        super().__init__()
        f_maps = list(f_maps)
        if not f_maps or not all(isinstance(f, int) and f >= 1 for f in f_maps):
            raise ValueError(f"{name}: f_maps must be a non-empty list of positive ints, got {f_maps!r}")
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"{name}: in_channels must be a positive int, got {in_channels!r}")
        if not isinstance(num_groups, int) or num_groups < 1:
            raise ValueError(f"{name}: num_groups must be a positive int, got {num_groups!r}")
        if not isinstance(space_to_depth, int) or space_to_depth < 1:
            raise ValueError(f"{name}: space_to_depth must be a positive int, got {space_to_depth!r}")
        self.name = name
        self.in_channels = in_channels
        self.output = check_output(output, name)
        self.pool_kernels = as_kernel_list(pool_kernels, len(f_maps) - 1, "pool_kernels", name)
        # Inputs are zero-padded to this multiple per (B, H, W) axis so every pooling divides exactly.
        self.space_to_depth = space_to_depth
        t, h, w = prod_per_axis(self.pool_kernels)
        self.multiple = (t, h * space_to_depth, w * space_to_depth)

        chans = [in_channels * space_to_depth**2] + f_maps
        self.encoders = nn.ModuleList(
            ResBlock(chans[i], chans[i + 1], num_groups, factorised) for i in range(len(f_maps))
        )
        self.pools = nn.ModuleList(nn.MaxPool3d((kh, kw, kt)) for kt, kh, kw in self.pool_kernels)
        if not all(isinstance(d, int) and d >= 1 for d in context_dilations):
            raise ValueError(f"{name}: context_dilations must be positive ints, got {context_dilations!r}")
        if bottleneck is None and (context_dilations or global_context):
            bottleneck = ContextBlock(f_maps[-1], list(context_dilations), bool(global_context), num_groups,
                                      factorised)
        self.bottleneck = bottleneck if bottleneck is not None else nn.Identity()
        self.decoders = nn.ModuleList(
            UpBlock(f_maps[i + 1], f_maps[i], num_groups, factorised) for i in reversed(range(len(f_maps) - 1))
        )
        self.head = nn.Conv3d(f_maps[0], in_channels * space_to_depth**2, 1)
        init_head(self.head, self.output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_voxels(x, self.in_channels, self.name)
        xp, sizes = pad_to(x, self.multiple)
        # Time last (see the module doc) and channels-last memory: every conv on oneDNN's fast path on CPU.
        h = fold_space(xp, self.space_to_depth).permute(0, 1, 3, 4, 2)
        h = h.contiguous(memory_format=torch.channels_last_3d)
        skips = []
        for i, enc in enumerate(self.encoders):
            if i:
                h = self.pools[i - 1](h)
            h = enc(h)
            skips.append(h)
        h = self.bottleneck(skips.pop())
        for dec in self.decoders:
            h = dec(h, skips.pop())
        out = unfold_space(self.head(h).permute(0, 1, 4, 2, 3), self.space_to_depth)
        return crop_to(apply_output(out, xp, self.output), sizes).contiguous()
