"""Training crops and validation frames over voxel files."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from _trainkit import voxel_pair, write_pair_file
from evdenoise.artifacts import write_voxels
from evdenoise.dataset import Augment, Frames, RandomCrops, StepSampler
from evdenoise.events import EventFileError
from evdenoise.voxel import VoxelSpec
from evdenoise.windows import make_windows

torch.set_num_threads(1)
NO_AUG = Augment(flips=False, rot90=False, polarity_swap=False)


def cubed_file(tmp_path: Path, channels: int = 1, name: str = "cubed.h5", shape=(4, 12, 30)) -> Path:
    """label = raw ** 3: elementwise and odd, so it commutes with every augmentation."""
    rng = np.random.default_rng(channels)
    raw = rng.integers(-3, 4, (3, channels, *shape)).astype(np.float32)
    return write_pair_file(tmp_path / name, raw, raw ** 3)


def dihedral_images(x: torch.Tensor) -> list[torch.Tensor]:
    """All 16 flips / rotations / polarity swaps of a (C, B, h, w) square crop."""
    out = []
    for pol in (x, -x if x.shape[0] == 1 else x.flip(0)):
        for k in range(4):
            r = torch.rot90(pol, k, dims=(-2, -1))
            out += [r, r.flip(-1)]
    return out


@pytest.mark.parametrize("channels", [1, 2])
def test_augmented_crops_keep_raw_and_label_aligned(tmp_path: Path, channels: int) -> None:
    f = cubed_file(tmp_path, channels)
    ds = RandomCrops([f], (8, 8), 64, seed=3, changed_crop_p=0.0)
    plain = RandomCrops([f], (8, 8), 64, seed=3, aug=NO_AUG, changed_crop_p=0.0)
    seen = set()
    for i in range(64):
        raw, label = ds[i]
        assert raw.shape == (channels, 4, 8, 8) and raw.dtype == torch.float32
        assert torch.equal(label, raw ** 3)
        # Same seed, same crop: the augmented crop is one of the 16 symmetries of the plain one.
        images = dihedral_images(plain[i][0])
        matches = [k for k, im in enumerate(images) if torch.equal(im, raw)]
        assert matches
        seen.add(matches[0])
    assert len(seen) > 4  # augmentation really varies


def test_crops_are_deterministic_picklable_and_seeded(tmp_path: Path) -> None:
    f = cubed_file(tmp_path)
    ds = RandomCrops([f], (6, 10), 16, seed=1)
    first = [ds[i] for i in range(8)]
    clone = pickle.loads(pickle.dumps(ds))  # after the handles were opened
    for i, (raw, label) in enumerate(first):
        assert torch.equal(clone[i][0], raw) and torch.equal(clone[i][1], label)
    other = RandomCrops([f], (6, 10), 16, seed=2)
    assert any(not torch.equal(other[i][0], first[i][0]) for i in range(8))
    # Non-square patch: no rotations, the shape stays (h, w).
    assert all(r.shape[-2:] == (6, 10) for r, _ in first)


@pytest.mark.parametrize("sparse", [False, True])
def test_cached_windows_give_the_same_crops_and_are_not_changed(tmp_path: Path, sparse: bool) -> None:
    f = cubed_file(tmp_path)
    if sparse:  # mostly empty cells, as in real voxel grids: the cache keeps them packed
        raw = np.zeros((3, 1, 4, 12, 30), np.float32)
        raw[:, :, 1, 3:5, 7:12] = np.arange(1, 11, dtype=np.float32).reshape(2, 5)
        f = write_pair_file(tmp_path / "sparse.h5", raw, raw ** 3)
    plain, cached = RandomCrops([f], (6, 10), 32, seed=3), RandomCrops([f], (6, 10), 32, seed=3, cache=True)
    for _ in range(2):  # the second pass reads the cache only
        for i in range(32):
            a, b = plain[i], cached[i]
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
            b[0].add_(100)  # a consumer writing into its batch must not reach the cache
    assert len(cached.data._cache) == len(cached.data)
    assert all(isinstance(p, tuple) == sparse for pair in cached.data._cache.values() for p in pair)
    assert not pickle.loads(pickle.dumps(cached)).data._cache  # workers start with an empty cache


def test_workers_give_the_same_batches(tmp_path: Path) -> None:
    f = cubed_file(tmp_path)
    ds = RandomCrops([f], (8, 8), 24, seed=0)
    sampler = StepSampler(0, 6, 4)

    def batches(workers: int) -> list[torch.Tensor]:
        return [b[0] for b in DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers)]

    serial, parallel = batches(0), batches(2)
    assert len(serial) == 6
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))


def test_changed_crop_preference(tmp_path: Path) -> None:
    # One changed cell per window in a 64x64 frame: uniform 8x8 crops rarely contain it.
    raw = np.zeros((4, 1, 2, 64, 64), np.float32)
    label = raw.copy()
    rng = np.random.default_rng(0)
    for s in range(4):
        raw[s, 0, 1, rng.integers(64), rng.integers(64)] = 1
    f = write_pair_file(tmp_path / "sparse.h5", raw, label)

    def hits(p: float) -> int:
        ds = RandomCrops([f], (8, 8), 50, seed=0, changed_crop_p=p)
        return sum(bool((r != lab).any()) for r, lab in (ds[i] for i in range(50)))

    assert hits(1.0) == 50
    assert hits(0.0) < 10
    assert 10 < hits(0.5) < 45


def test_small_frames_are_zero_padded(tmp_path: Path) -> None:
    f = cubed_file(tmp_path, shape=(2, 5, 7))
    raw, label = RandomCrops([f], (8, 8), 4, seed=0, aug=NO_AUG)[0]
    assert raw.shape == (1, 2, 8, 8)
    assert not raw[..., 5:, :].any() and not raw[..., :, 7:].any()
    assert torch.equal(label, raw ** 3)


def test_step_sampler_splits_ranks_and_resumes() -> None:
    full = list(StepSampler(0, 3, 2, rank=0, world=1))
    assert full == list(range(6))
    r0, r1 = list(StepSampler(0, 3, 2, 0, 2)), list(StepSampler(0, 3, 2, 1, 2))
    assert not set(r0) & set(r1) and sorted(r0 + r1) == list(range(12))
    assert list(StepSampler(2, 3, 2, 1, 2)) == r1[4:]
    assert len(StepSampler(1, 3, 2)) == 4


def test_frames_whole_windows_in_file_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = write_pair_file(tmp_path / "a.h5", *voxel_pair(rng, (5, 1, 2, 6, 8)))
    b = write_pair_file(tmp_path / "b.h5", *voxel_pair(rng, (2, 1, 2, 10, 4)))
    frames = Frames([a, b])
    assert len(frames) == 7
    assert frames[6][0].shape == (1, 2, 10, 4)
    batches = frames.batches(2)
    assert batches == [[0, 1], [2, 3], [4], [5, 6]]
    assert frames.batches(2, rank=1, world=2) == [[2, 3], [5, 6]]


def test_missing_label_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pred_only.h5"
    write_voxels(path, {"raw": np.zeros((1, 1, 2, 4, 4), np.float32)}, make_windows(0, 19999), VoxelSpec(2, 1))
    with pytest.raises(EventFileError, match="pred_only.h5.*label"):
        RandomCrops([path], (4, 4), 1)


def test_augment_rejects_unknown_keys() -> None:
    assert Augment.from_dict({"flips": False}) == Augment(flips=False)
    with pytest.raises(ValueError, match="unknown augment key.*'mirror'"):
        Augment.from_dict({"mirror": True})
