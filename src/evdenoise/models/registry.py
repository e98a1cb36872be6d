"""Models by name: ``@register("name")`` on a builder, ``build_model(cfg)`` to make one.

A model config is a plain dict (from YAML): ``{"name": "unet3d", "in_channels": 1, ...}``;
every key but ``name`` goes to the builder as a keyword argument.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable, Mapping

from torch import nn

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = builder
        return builder

    return deco


def build_model(cfg: Mapping[str, Any]) -> nn.Module:
    """Build the model a config names; unknown names list the known ones."""
    kwargs = dict(cfg)
    name = kwargs.pop("name", None)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"bad settings for model {name!r}: {err}") from None
