"""Model zoo: importing this package registers every model."""
from . import identity, smp, umamba, unet3d  # noqa: F401  (registration side effect)
from .registry import MODELS, build_model, register

__all__ = ["MODELS", "build_model", "register"]
