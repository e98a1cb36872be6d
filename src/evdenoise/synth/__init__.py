"""Synthetic paired event data: flickering light sources with lens flare over moving scenes.

``synthesize`` writes train/val/test pairs (noisy ``*_bg_flare.h5`` with flare, clean
``*_bg_light.h5`` without) and a manifest; ``generate_pair`` makes one pair in memory.
"""
from .config import SynthConfig
from .dataset import DEFAULT_COUNTS, cut_background, file_seed, generate_pair, pair_paths, synthesize
from .dvs import excess_kept, not_in
from .preview import write_preview

__all__ = ["SynthConfig", "DEFAULT_COUNTS", "cut_background", "file_seed", "generate_pair", "pair_paths", "synthesize",
           "excess_kept", "not_in", "write_preview"]
