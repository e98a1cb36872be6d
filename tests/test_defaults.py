"""One home for every default: config/config.yaml's values are the library's defaults.

These tests fail when the two drift apart: the config, the schema (types and required keys, no
defaults of its own), evdenoise.defaults, the dataclasses, the model builders, the example model
configs, the CLI, and every library function whose parameter names a config setting.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

import evdenoise
from evdenoise import defaults
from evdenoise.cli import build_parser
from evdenoise.models.unet3d import UNet3D
from evdenoise.synth import DEFAULT_COUNTS, SynthConfig
from evdenoise.train_config import TrainConfig
from evdenoise.voxel import VoxelSpec

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
SCHEMA = REPO / "config" / "schema.yaml"

# A parameter with one of these names means the config setting: its default must be the constant.
PARAMETERS = {"segment_us": defaults.SEGMENT_US, "grid": defaults.GRID, "bins": defaults.BINS,
              "channels": defaults.CHANNELS, "in_channels": defaults.CHANNELS, "assignment": defaults.ASSIGNMENT,
              "keep_threshold": defaults.KEEP_THRESHOLD, "pairing": defaults.PAIRING}


def test_sections_are_the_library_constants() -> None:
    assert CONFIG["windows"] == {"segment_us": defaults.SEGMENT_US, "grid": defaults.GRID}
    assert CONFIG["voxel"] == dataclasses.asdict(VoxelSpec())
    assert CONFIG["predict"] == {"mode": defaults.PREDICT_MODE, "batch_size": defaults.PREDICT_BATCH_SIZE,
                                 "device": defaults.DEVICE}
    assert CONFIG["decode"] == {"strategy": defaults.DECODE, "seed": defaults.DECODE_SEED,
                                "keep_threshold": defaults.KEEP_THRESHOLD}
    folders = CONFIG["data"]["folders"]
    assert (folders["noisy_suffix"], folders["clean_suffix"]) == defaults.PAIRING


def test_synthetic_data_defaults() -> None:
    synthetic, synth = CONFIG["data"]["synthetic"], SynthConfig()
    assert synthetic["counts"] == dict(DEFAULT_COUNTS)
    assert (synthetic["width"], synthetic["height"], synthetic["duration_us"]) == (
        synth.width, synth.height, synth.duration_us)


def test_train_section_is_train_config_defaults() -> None:
    fields = TrainConfig().to_dict()
    assert {k: fields[k] for k in CONFIG["train"]} == CONFIG["train"]


def _builder_defaults(cls: type) -> dict:
    return {n: p.default for n, p in inspect.signature(cls).parameters.items() if p.default is not p.empty}


def test_model_section_is_the_builder_defaults() -> None:
    built = _builder_defaults(UNet3D)
    model = {k: v for k, v in CONFIG["model"].items() if k not in ("name", "pretrained")}
    assert CONFIG["model"]["name"] == "unet3d"
    assert {k: list(built[k]) if isinstance(built[k], tuple) else built[k] for k in model} == model
    assert built["in_channels"] == CONFIG["voxel"]["channels"]


@pytest.mark.parametrize("path", sorted((Path(evdenoise.__file__).parent / "configs" / "models").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_example_model_configs_take_the_voxel_channels(path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    assert cfg["in_channels"] == CONFIG["voxel"]["channels"]
    if path.stem == "unet3d":  # the default model's example lists its builder defaults
        built = _builder_defaults(UNet3D)
        for key in ("f_maps", "output", "space_to_depth", "num_groups", "factorised"):
            assert cfg[key] == (list(built[key]) if isinstance(built[key], tuple) else built[key]), key


def _library_functions():
    for info in pkgutil.walk_packages(evdenoise.__path__, "evdenoise."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", "") == info.name:
                yield f"{info.name}.{name}", obj


def test_no_function_has_its_own_default_for_a_config_setting() -> None:
    drifted = []
    for name, obj in _library_functions():
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            continue
        for p in params.values():
            if p.name in PARAMETERS and p.default is not p.empty and p.default is not None \
                    and p.default != PARAMETERS[p.name]:
                drifted.append(f"{name}({p.name}={p.default!r})")
    assert not drifted, f"defaults that are not evdenoise.defaults': {drifted}"


def test_cli_defaults() -> None:
    parser = build_parser()
    split = parser.parse_args(["split", "in.h5", "-o", "out.h5"])
    assert (split.segment_us, split.grid) == (defaults.SEGMENT_US, defaults.GRID)
    vox = parser.parse_args(["voxelize", "seg.h5", "-o", "vox.h5"])
    assert dataclasses.asdict(VoxelSpec(vox.bins, vox.channels, vox.assignment)) == CONFIG["voxel"]
    den = parser.parse_args(["denoise", "in.h5", "out.h5"])
    assert {"mode": den.mode, "batch_size": den.batch_size, "device": den.device} == CONFIG["predict"]
    assert den.seed == CONFIG["decode"]["seed"]


def _keys(schema: dict, cfg: dict, path: str = ""):
    """(path, key, section schema) for every key of ``cfg`` the schema describes (the model section's builder
    keys are the builder's to check)."""
    for key, value in cfg.items():
        if key not in schema.get("properties", {}):
            assert schema.get("additionalProperties") is not False, f"{path}{key} is not in the schema"
            continue
        sub = schema["properties"][key]
        yield path, key, schema
        if isinstance(value, dict) and "properties" in sub:
            yield from _keys(sub, value, f"{path}{key}.")


def test_schema_has_no_defaults_and_requires_every_key() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    assert "default:" not in SCHEMA.read_text()
    missing = [f"{path}{key}" for path, key, section in _keys(schema, CONFIG) if key not in section.get("required", [])]
    assert not missing, f"config keys the schema does not require: {missing}"


@pytest.mark.parametrize("path", [("voxel", "channels"), ("train",), ("decode", "keep_threshold"),
                                  ("data", "synthetic", "counts")])
def test_a_deleted_key_fails_validation(path: tuple[str, ...]) -> None:
    validate(copy.deepcopy(CONFIG), str(SCHEMA))  # the repository's config is valid as it is
    cfg = copy.deepcopy(CONFIG)
    section = cfg
    for key in path[:-1]:
        section = section[key]
    del section[path[-1]]
    with pytest.raises(WorkflowError, match=path[-1]):
        validate(cfg, str(SCHEMA), set_default=False)
