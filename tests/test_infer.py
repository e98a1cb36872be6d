"""Whole-recording inference: pad, multiscale, resize and tile modes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _trainkit import TinyConv
from evdenoise.infer import _blend_weights, predict_voxels, resolve_device, scale_factor
from evdenoise.models import build_model
from evdenoise.voxel import resize

torch.set_num_threads(1)


@pytest.fixture
def raw() -> np.ndarray:
    rng = np.random.default_rng(0)
    return ((rng.random((3, 1, 4, 45, 70)) < 0.1) * rng.integers(-2, 3, (3, 1, 4, 45, 70))).astype(np.float32)


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return TinyConv(1)


def test_pad_mode_is_the_batched_model(raw: np.ndarray) -> None:
    model = tiny()
    with torch.no_grad():
        expected = model(torch.from_numpy(raw)).numpy()
    for batch_size in (1, 2, 5):
        out = predict_voxels(model, raw, mode="pad", batch_size=batch_size, device="cpu")
        assert out.dtype == np.float32 and out.shape == raw.shape
        np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("tile,overlap", [((16, 16), 8), ((20, 32), 12), ((64, 64), 16)])
def test_tile_mode_reproduces_full_frames(raw: np.ndarray, tile: tuple[int, int], overlap: int) -> None:
    model = tiny()
    full = predict_voxels(model, raw, device="cpu")
    tiled = predict_voxels(model, raw, mode="tile", tile=tile, overlap=overlap, batch_size=2, device="cpu")
    # The tiny net sees 2 cells around each one; the blend ignores the outer quarter of every overlap.
    np.testing.assert_allclose(tiled, full, atol=1e-4)


def without_group_norm(model: torch.nn.Module) -> torch.nn.Module:
    """GroupNorm statistics span the whole input, so no tiling can reproduce them exactly; swap
    them out to test the tiling itself (pooling-grid alignment, padding, blending)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.GroupNorm):
                setattr(module, name, torch.nn.Identity())
    return model


def test_tile_mode_close_for_a_unet(raw: np.ndarray) -> None:
    torch.manual_seed(0)
    cfg = {"name": "unet3d", "in_channels": 1, "f_maps": [4, 8, 16], "output": "direct"}
    model = without_group_norm(build_model(cfg))
    full = predict_voxels(model, raw, device="cpu")
    tiled = predict_voxels(model, raw, mode="tile", tile=(48, 48), overlap=24, device="cpu")
    err = np.abs(tiled - full)
    assert err.max() < 0.02 * np.abs(full).max() and err.mean() < 0.002 * np.abs(full).mean()


class KeepDense(torch.nn.Module):
    """Keeps the cells of two or more events, drops the rest: a stand-in gate whose verdict depends on scale."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (x.abs() >= 2)


def test_scale_factor_rounds_half_up() -> None:
    assert scale_factor((480, 640), (120, 160)) == 4 and scale_factor((260, 346), (120, 160)) == 2
    assert scale_factor((180, 240), (120, 160)) == 2 and scale_factor((170, 227), (120, 160)) == 1
    assert scale_factor((120, 160), (480, 640)) == 1 and scale_factor((480, 640), None) == 1


def test_multiscale_without_a_second_scale_is_pad(raw: np.ndarray) -> None:
    model = tiny()
    pad = predict_voxels(model, raw, mode="pad", device="cpu")
    for train_size in (None, (45, 70), (40, 60)):  # unknown, same, 1.1x
        np.testing.assert_array_equal(predict_voxels(model, raw, mode="multiscale", train_size=train_size,
                                                     device="cpu"), pad)


def test_multiscale_keeps_what_either_scale_keeps() -> None:
    raw = np.zeros((1, 2, 1, 7, 9), np.float32)  # 7 x 9: the pooled pass pads to 8 x 10
    raw[0, 0, 0, 0:2, 0:2] = [[2, 1], [1, 0]]  # a dense cell in the block: the pooled pass keeps the block
    raw[0, 0, 0, 2:4, 2:4] = 1  # four lone events: dropped at both scales
    raw[0, 1, 0, 6, 8] = 3  # the last, padded block
    out = predict_voxels(KeepDense(), raw, mode="multiscale", train_size=(3, 4), device="cpu")  # factor 2
    expected = raw.copy()
    expected[0, 0, 0, 2:4, 2:4] = 0
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(predict_voxels(KeepDense(), raw, mode="pad", device="cpu"), raw * (raw >= 2))
    signed = np.zeros((1, 1, 1, 2, 2), np.float32)
    signed[0, 0, 0, 0] = [-3, 1]  # the block's strongest cell is -3: kept, and the +1 with it
    np.testing.assert_array_equal(predict_voxels(KeepDense(), signed, mode="multiscale", train_size=(1, 1),
                                                 device="cpu"), signed)


def test_multiscale_leaves_empty_cells_to_the_native_pass() -> None:
    class Overshoot(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 3 * x + 0.5

    raw = np.zeros((2, 1, 2, 8, 8), np.float32)
    raw[:, :, :, ::3, ::2] = -1
    out = predict_voxels(Overshoot(), raw, mode="multiscale", train_size=(2, 2), device="cpu")
    # Shares clip to [0, 1]: an input cell keeps at most itself; empty cells get the native prediction.
    np.testing.assert_array_equal(out, np.where(raw != 0, raw, 0.5))


def test_blend_weights_are_positive_and_flat_inside() -> None:
    w = _blend_weights(32, True, True, 8)
    assert (w > 0).all() and np.all(w[8:24] == 1)
    assert np.all(np.diff(w[:8]) >= 0) and w[0] < 1e-3 and w[1] < 1e-3  # guard quarter
    assert np.all(_blend_weights(32, False, False, 8) == 1)


def test_resize_mode_goes_through_the_training_size(raw: np.ndarray) -> None:
    model = tiny()
    out = predict_voxels(model, raw, mode="resize", train_size=(30, 35), device="cpu")
    with torch.no_grad():
        expected = resize(model(resize(torch.from_numpy(raw), (30, 35))), (45, 70)).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)
    identity = build_model({"name": "identity"})
    np.testing.assert_array_equal(predict_voxels(identity, raw, mode="resize", train_size=(45, 70), device="cpu"), raw)


def test_bad_arguments(raw: np.ndarray) -> None:
    model = tiny()
    with pytest.raises(ValueError, match="mode"):
        predict_voxels(model, raw, mode="crop")
    with pytest.raises(ValueError, match="train_size"):
        predict_voxels(model, raw, mode="resize")
    with pytest.raises(ValueError, match="overlap"):
        predict_voxels(model, raw, mode="tile", tile=(16, 16), overlap=16)
    with pytest.raises(ValueError, match="S, C, B, H, W"):
        predict_voxels(model, raw[0])
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")
