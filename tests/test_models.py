"""Model zoo: shapes for every model and architecture, identity at init, learning, errors, checkpoints."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import evdenoise
from evdenoise.models import MODELS, build_model
from evdenoise.models._common import GATE_BIAS
from evdenoise.models.smp import ARCHITECTURES
from evdenoise.models.unet3d import fold_space, unfold_space

torch.set_num_threads(1)

ODD = (8, 37, 53)  # (B, H, W): odd H and W that no pooling divides
CONFIGS = sorted((Path(evdenoise.__file__).parent / "configs" / "models").glob("*.yaml"))
SMP_ARCHS = list(ARCHITECTURES)
# Small settings so every model builds and runs in well under a second per case (PAN pads to 128^3: slowest).
SMALL = {
    "unet3d": {"name": "unet3d", "f_maps": [4, 8, 16]},
    "unet3d_factorised": {"name": "unet3d", "f_maps": [4, 8, 16], "factorised": True, "num_groups": 3},
    "unet3d_direct": {"name": "unet3d", "f_maps": [4, 8], "output": "direct"},
    "unet3d_gate": {"name": "unet3d", "f_maps": [4, 8], "output": "gate"},
    "unet3d_pool_time": {"name": "unet3d", "f_maps": [4, 8, 8], "pool_kernels": [[2, 2, 2], [1, 3, 2]]},
    "umamba": {"name": "umamba", "f_maps": [4, 8, 16], "d_state": 4},
    "identity": {"name": "identity"},
}


def build(cfg: dict) -> nn.Module:
    """A model with 1 channel and a residual output unless ``cfg`` says otherwise: the identity at init, which
    these tests use to check shapes and paths (the library's defaults are the gated 2-channel setup)."""
    return build_model({"in_channels": 1, "output": "residual", **cfg})


def voxels(c: int, shape: tuple[int, int, int] = ODD, n: int = 2, seed: int = 0) -> torch.Tensor:
    """Sparse signed event counts, like real voxels."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand((n, c, *shape), generator=g) < 0.1
    return mask * torch.randint(-2, 3, (n, c, *shape), generator=g).float()


def shipped_models() -> set[str]:
    """Models the package registers (other test modules register tiny test models too)."""
    return {name for name, builder in MODELS.items() if builder.__module__.startswith("evdenoise.")}


def test_every_registered_model_is_covered() -> None:
    assert shipped_models() == {"unet3d", "smp", "umamba", "identity"}
    assert {cfg["name"] for cfg in SMALL.values()} | {"smp"} == shipped_models()


@pytest.mark.parametrize("c", [1, 2])
@pytest.mark.parametrize("key", list(SMALL))
def test_shapes_any_size(key: str, c: int) -> None:
    model = build({**SMALL[key], "in_channels": c})
    for shape in (ODD, (8, 1, 3), (8, 64, 48)):
        x = voxels(c, shape)
        model.train()
        y = model(x)
        assert y.shape == x.shape and y.dtype == x.dtype
        if y.requires_grad:  # (identity has nothing to train)
            y.sum().backward()  # the graph reaches through every padded / cropped path


@pytest.mark.parametrize("c", [1, 2])
@pytest.mark.parametrize("arch", SMP_ARCHS)
def test_smp_every_architecture_shapes(arch: str, c: int) -> None:
    model = build({"name": "smp", "arch": arch, "in_channels": c}).eval()
    x = voxels(c, n=1)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)  # zero head + residual: identity at init


@pytest.mark.parametrize("arch", ["UnetPlusPlus", "FPN", "Linknet", "MAnet", "DeepLabV3", "PSPNet"])
def test_smp_depth_three_needs_no_time_padding(arch: str) -> None:
    model = build({"name": "smp", "arch": arch, "encoder_depth": 3}).eval()
    assert model.multiple == (8, 8, 8)  # 8 bins are used as they are
    with torch.no_grad():
        assert model(voxels(1, n=1)).shape == (1, 1, *ODD)


def test_smp_unet_keeps_the_time_axis() -> None:
    model = build({"name": "smp", "arch": "unet"})
    assert model.multiple == (1, 32, 32)
    assert all(s[2] == 1 for s in model.net.encoder.strides)  # library order (h, w, d): d = time
    custom = build({"name": "smp", "strides": [[2, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2]]})
    assert custom.multiple == (2, 32, 32)


@pytest.mark.parametrize("key", ["unet3d", "unet3d_factorised", "umamba"])
def test_identity_at_init(key: str) -> None:
    model = build({**SMALL[key], "in_channels": 2}).train()
    x = voxels(2)
    assert torch.equal(model(x), x)


@pytest.mark.parametrize("c", [1, 2])
@pytest.mark.parametrize("cfg", [SMALL["unet3d_gate"], {"name": "smp", "arch": "FPN", "encoder_depth": 3, "output": "gate"}])
def test_gate_only_removes(cfg: dict, c: int) -> None:
    model = build({**cfg, "in_channels": c})
    x = voxels(c)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), x / 2)  # keeps half of every cell at init
        for p in model.parameters():  # any weights: a share of each cell, with its sign, nothing where x is 0
            p.normal_()
        y = model(x)
    assert torch.all(y.abs() <= x.abs()) and torch.all(y * x >= 0) and torch.all(y[x == 0] == 0)
    assert not torch.equal(y, x / 2)


def test_unknown_output_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="output must be one of"):
        build({"name": "unet3d", "output": "sigmoid"})


def test_default_unet3d_is_identity_and_pools_only_space() -> None:
    model = build({"name": "unet3d"})
    assert model.multiple[0] == 1  # the 8 time bins are never pooled
    x = voxels(1, n=1)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), x)


def test_space_to_depth_is_lossless_and_optional() -> None:
    x = voxels(2, (8, 6, 10))
    folded = fold_space(x, 2)
    assert folded.shape == (2, 8, 8, 3, 5)
    assert torch.equal(folded[:, 1], x[:, 0, :, 0::2, 1::2])  # channel = (c, dy, dx)
    assert torch.equal(unfold_space(folded, 2), x)
    plain = build({"name": "unet3d", "f_maps": [4, 8], "space_to_depth": 1})
    assert plain.multiple == (1, 2, 2) and plain.encoders[0].body[0].in_channels == 1


def test_group_norm_groups_clamp_to_divisors() -> None:
    model = build({"name": "unet3d", "f_maps": [6, 10], "num_groups": 4})
    groups = {(m.num_groups, m.num_channels) for m in model.modules() if isinstance(m, nn.GroupNorm)}
    assert groups == {(3, 6), (2, 10)}


LINKNET3 = {"name": "smp", "arch": "Linknet", "encoder_depth": 3}


@pytest.mark.parametrize("cfg", [SMALL["unet3d"], SMALL["umamba"], LINKNET3])
def test_optimiser_steps_reduce_mse(cfg: dict) -> None:
    torch.manual_seed(0)
    model = build(cfg).train()
    x = voxels(1, (8, 24, 24), n=2)
    target = 0.5 * x
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_unet3d_learns_to_remove_a_flare() -> None:
    """Two samples of sparse events plus a fixed smooth blob: the trained model removes most of the blob."""
    torch.manual_seed(0)
    clean = voxels(1, (8, 32, 32), n=2, seed=1)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = 1.5 * torch.exp(-((yy - 14) ** 2 + (xx - 18) ** 2) / (2 * 5.0**2))
    noisy = clean + blob  # the same flare in every bin of both samples
    model = build({"name": "unet3d", "f_maps": [8, 16]}).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(noisy), clean)
        loss.backward()
        opt.step()
    with torch.no_grad():
        before = nn.functional.mse_loss(noisy, clean).item()
        after = nn.functional.mse_loss(model.eval()(noisy), clean).item()
    assert after < 0.2 * before


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"name": "unet4d"}, "unknown model 'unet4d'.*unet3d"),
        ({"name": "unet3d", "depth": 3}, "bad settings for model 'unet3d'"),
        ({"name": "unet3d", "f_maps": []}, "f_maps"),
        ({"name": "unet3d", "f_maps": [8, 0]}, "f_maps"),
        ({"name": "unet3d", "f_maps": [8, 16], "pool_kernels": [[1, 2, 2], [1, 2, 2]]}, "list of 1"),
        ({"name": "unet3d", "pool_kernels": [1, 0, 2]}, "positive ints"),
        ({"name": "unet3d", "num_groups": 0}, "num_groups"),
        ({"name": "unet3d", "space_to_depth": 0}, "space_to_depth"),
        ({"name": "umamba", "d_state": 0}, "d_state"),
        ({"name": "umamba", "token_pool": [2, 2]}, "token_pool"),
        ({"name": "smp", "arch": "SegFormer"}, "unknown architecture 'SegFormer'.*Unet"),
        ({"name": "smp", "encoder_name": "resnet9"}, "unknown encoder 'resnet9'"),
        ({"name": "smp", "encoder_weights": "imagenet"}, "encoder_weights must be None"),
        ({"name": "smp", "arch": "Unet", "encoder_depth": 3}, "only works with encoder_depth 5"),
        ({"name": "smp", "arch": "PAN", "encoder_depth": 4}, "only works with encoder_depth 5"),
        ({"name": "smp", "arch": "FPN", "encoder_depth": 7}, "encoder_depth must be 3, 4 or 5"),
        ({"name": "smp", "arch": "FPN", "strides": [1, 2, 2]}, "only Unet takes strides"),
        ({"name": "smp", "classes": 3}, "set by the adapter"),
        ({"name": "smp", "encoder_name": "mobilenet_v2"}, "cannot build Unet.*strides"),
        ({"name": "smp", "arch": "FPN", "decoder_pyramid_channels": "many"}, "cannot build FPN"),
    ],
)
def test_bad_settings_raise_clear_errors(cfg: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build(cfg)


@pytest.mark.parametrize("cfg", [SMALL["unet3d"], SMALL["umamba"], {"name": "smp", "arch": "PSPNet"}])
def test_impossible_inputs_raise_clear_errors(cfg: dict) -> None:
    model = build(cfg)
    with pytest.raises(ValueError, match="5-D voxel batch"):
        model(torch.zeros(1, 8, 16, 16))
    with pytest.raises(ValueError, match="in_channels=1, got 2"):
        model(torch.zeros(1, 2, 8, 16, 16))
    with pytest.raises(ValueError, match="empty"):
        model(torch.zeros(1, 1, 8, 0, 16))


def test_smp_shape_it_cannot_take_is_a_value_error() -> None:
    # DeepLabV3's image-pooling branch normalises one value per channel: impossible in training with batch 1.
    model = build({"name": "smp", "arch": "DeepLabV3", "encoder_depth": 3}).train()
    with pytest.raises(ValueError, match=r"smp DeepLabV3: cannot take input of shape \(1, 1, 8, 37, 53\)"):
        model(voxels(1, n=1))


@pytest.mark.parametrize("cfg", [SMALL["unet3d_factorised"], SMALL["umamba"], LINKNET3])
def test_state_dict_round_trip(cfg: dict) -> None:
    torch.manual_seed(0)
    model = build({**cfg, "in_channels": 2})
    with torch.no_grad():  # move off the identity so the check means something
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    twin = build({**cfg, "in_channels": 2})
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    x = voxels(2)
    with torch.no_grad():
        out = model.eval()(x)
        assert not torch.equal(out, x)
        assert torch.equal(out, twin.eval()(x))


def test_example_configs_cover_every_model() -> None:
    assert {yaml.safe_load(p.read_text())["name"] for p in CONFIGS} == shipped_models()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_example_configs_build_and_run(path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    model = build_model(cfg).eval()
    x = voxels(cfg["in_channels"], n=1)
    with torch.no_grad():  # every example starts as the identity or as a gate keeping the same share everywhere
        keep = torch.sigmoid(torch.tensor(GATE_BIAS)) if getattr(model, "output", None) == "gate" else 1.0
        assert torch.equal(model(x), x * keep)


def _without_group_norm(model: nn.Module) -> nn.Module:
    """GroupNorm couples every cell through its statistics; without it the probe sees the receptive field."""
    for name, child in model.named_children():
        setattr(model, name, nn.Identity()) if isinstance(child, nn.GroupNorm) else _without_group_norm(child)
    return model


def _impulse_reach(cfg: dict) -> tuple[float, float]:
    """(largest distance in px at which an impulse at the centre of a 640x480 window changes the output,
    the largest change at >= 128 px relative to the largest change anywhere)."""
    torch.manual_seed(0)
    model = _without_group_norm(build({**cfg, "in_channels": 2})).eval()
    with torch.no_grad():  # off the initial state, whose gate head ignores every feature
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        x = (torch.rand((1, 2, 8, 480, 640), generator=torch.Generator().manual_seed(0)) < 0.02).float()
        y = x.clone()
        y[..., 238:242, 318:322] += 3
        change = (model(y) - model(x)).abs().sum(dim=(0, 1, 2))
    yy, xx = torch.meshgrid(torch.arange(480), torch.arange(640), indexing="ij")
    dist = torch.hypot(yy - 240.0, xx - 320.0)
    has = x.sum(dim=(0, 1, 2)) > 0  # the gate changes only cells with input
    reach = float(dist[(change > 1e-6 * change.max()) & has].max())
    return reach, float(change[(dist >= 128) & has].max() / change.max())


def test_pretrained_architecture_sees_a_whole_flare() -> None:
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "pretrained.yaml").read_text())["model"]
    reach, far = _impulse_reach(cfg)
    assert reach >= 256 and far > 1e-2  # a 256 px wide flare is seen whole from its centre, and beyond
    plain = {k: v for k, v in cfg.items() if k not in ("context_dilations", "global_context")}
    reach, far = _impulse_reach(plain)  # the control: the same U-Net without its context block
    assert reach < 128 and far < 1e-5
