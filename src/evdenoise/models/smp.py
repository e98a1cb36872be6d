"""Adapter for segmentation-models-pytorch-3d: any of its architectures as a residual voxel denoiser.

The library works on (N, C, H, W, D) and down-samples every axis by 2 per encoder stage. Our voxels are
(N, C, B, H, W) with a short time axis (8 bins), so the adapter

* permutes to the library's layout and back;
* for ``Unet`` (the only architecture that takes ``strides``) keeps time at stride 1 in every stage by default
  (configurable ``strides``: one (t, h, w) per encoder stage, our axis order); the resnet/resnext encoders
  honour them, some others (efficientnet, mobileone) ignore them and then fail on 8 bins with a ValueError;
* for every other architecture zero-pads time, like H and W, to 2**encoder_depth and crops back. With 8 bins
  ``encoder_depth: 3`` needs no time padding (PSPNet's default); depth 5 pads 8 bins to 32 (4x the compute);
  PAN's depth is fixed at 5 by the library;
* builds with ``encoder_weights=None`` (nothing is downloaded) and initialises the segmentation head for
  ``output`` (``_common.OUTPUTS``): with ``"residual"`` (default) the untrained model is the identity;
* turns the library's failures on shapes it cannot take (its own check swallows its errors) into a
  ValueError naming the architecture and the shape.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import torch
from torch import nn

from ..defaults import CHANNELS
from ..voxel import crop_to, pad_to
from ._common import apply_output, as_kernel_list, check_output, check_voxels, init_head, prod_per_axis
from .registry import register

ARCHITECTURES = ("Unet", "UnetPlusPlus", "FPN", "Linknet", "PAN", "MAnet", "DeepLabV3", "DeepLabV3Plus", "PSPNet")
_BY_KEY = {name.lower(): name for name in ARCHITECTURES}
# Depths the library's architectures actually work with (checked by building and running each):
# PAN's constructor fixes 5; DeepLabV3Plus reads stride-4 features at features[-4]; Unet hands one
# ``strides`` list to an encoder that indexes 5 stages and to a decoder that wants exactly ``encoder_depth``.
ONLY_DEPTH_5 = {"pan", "deeplabv3plus", "unet"}
NO_DEPTH_ARGUMENT = {"pan"}
# The library's default depth where it is not 5 (used to size the padding).
DEFAULT_DEPTH = {"pspnet": 3}
# Architectures with one decoder channel count per encoder stage (their default lists 5).
LIST_DECODERS = {"unetplusplus", "manet"}
# Head up-sampling that brings the decoder output back to input size at a given depth (library defaults
# assume its default depth).
HEAD_UPSAMPLING = {
    "fpn": lambda depth: 2 ** (depth - 3),
    "pspnet": lambda depth: 2**depth,
    "deeplabv3": lambda depth: min(8, 2**depth),
}
# PAN's feature-pyramid block max-pools its stride-16 input three more times: every padded axis needs 128.
MIN_SIZE = {"pan": 128}


def _check_arguments(smp3d: Any, arch: str, encoder_name: str, arch_kwargs: dict[str, Any]) -> str:
    """The architecture's key after the checks that need no building; drops ``encoder_weights: null``."""
    key = str(arch).lower()
    if key not in _BY_KEY:
        raise ValueError(f"smp: unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    if arch_kwargs.pop("encoder_weights", None) is not None:
        raise ValueError("smp: encoder_weights must be None (pretrained weights would be downloaded)")
    for fixed in ("classes", "activation", "aux_params"):
        if fixed in arch_kwargs:
            raise ValueError(f"smp: {fixed!r} is set by the adapter, not the config")
    if encoder_name not in smp3d.encoders.get_encoder_names():
        raise ValueError(
            f"smp: unknown encoder {encoder_name!r}; known: {', '.join(smp3d.encoders.get_encoder_names())}"
        )
    return key


@register("smp")
class SMPModel(nn.Module):
    """A segmentation-models-pytorch-3d network mapping (N, C, B, H, W) to the same shape."""

    def __init__(
        self,
        in_channels: int = CHANNELS,
        arch: str = "Unet",
        encoder_name: str = "resnet18",
        encoder_depth: int | None = None,
        strides: Sequence[Sequence[int]] | Sequence[int] | None = None,
        output: str = "gate",
        **arch_kwargs: Any,
    ) -> None:
        super().__init__()
        # Imported here, not at module level: the library takes seconds to import and prints
        # deprecation warnings, which every evdenoise command would otherwise pay for.
        import segmentation_models_pytorch_3d as smp3d

        key = _check_arguments(smp3d, arch, encoder_name, arch_kwargs)
        cls = getattr(smp3d, _BY_KEY[key])
        depth = DEFAULT_DEPTH.get(key, 5) if encoder_depth is None else encoder_depth
        if not isinstance(depth, int) or not 3 <= depth <= 5:
            raise ValueError(f"smp: encoder_depth must be 3, 4 or 5, got {depth!r}")
        if key in ONLY_DEPTH_5 and depth != 5:
            raise ValueError(f"smp: {cls.__name__} only works with encoder_depth 5 in this library, got {depth}")
        if key not in NO_DEPTH_ARGUMENT:
            arch_kwargs["encoder_depth"] = depth
        if key in HEAD_UPSAMPLING:
            arch_kwargs.setdefault("upsampling", HEAD_UPSAMPLING[key](depth))

        if key == "unet":
            # Default: halve H and W per stage, never the short time axis.
            kernels = as_kernel_list((1, 2, 2) if strides is None else strides, depth, "strides", "smp")
            # The library wants (h, w, d) per stage, i.e. our (t, h, w) rotated.
            arch_kwargs["strides"] = tuple((h, w, t) for t, h, w in kernels)
            self.multiple = prod_per_axis(kernels)
        else:
            if key in LIST_DECODERS:
                # Their decoder_channels default has 5 entries whatever the depth: keep the shallowest ones.
                arch_kwargs.setdefault("decoder_channels", (256, 128, 64, 32, 16)[-depth:])
            if strides is not None:
                raise ValueError(f"smp: only Unet takes strides; {cls.__name__} halves every axis per stage")
            self.multiple = (2**depth,) * 3
        self.min_size = MIN_SIZE.get(key, 1)

        self.arch = cls.__name__
        self.in_channels = in_channels
        self.output = check_output(output, "smp")
        try:
            self.net = cls(
                encoder_name=encoder_name, encoder_weights=None, in_channels=in_channels, classes=in_channels,
                **arch_kwargs,
            )
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError) as err:
            # Several of the library's encoders do not accept its own ``strides`` argument, among others.
            raise ValueError(f"smp: cannot build {cls.__name__} with {arch_kwargs}: {err}") from None
        init_head(self.net.segmentation_head[0], self.output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_voxels(x, self.in_channels, f"smp {self.arch}")
        xp, sizes = pad_to(x, self.multiple, self.min_size)
        try:
            out = self.net(xp.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        except (RuntimeError, ValueError) as err:
            raise ValueError(
                f"smp {self.arch}: cannot take input of shape {tuple(x.shape)} "
                f"(padded to {tuple(xp.shape)}): {err}"
            ) from None
        if out.shape != xp.shape:
            raise ValueError(f"smp {self.arch}: produced {tuple(out.shape)} for padded input {tuple(xp.shape)}")
        return crop_to(apply_output(out, xp, self.output), sizes).contiguous()
