"""The workflow's sample table: pairing, splits, name checks."""
from pathlib import Path

import pytest

from evdenoise.samples import Sample, SampleError, build_samples, check_names, folder_samples


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _folders_cfg(tmp_path: Path, **kw) -> dict:
    cfg = {"noisy": str(tmp_path / "noisy"), "clean": str(tmp_path / "clean"), "noisy_suffix": "_bg_flare",
           "clean_suffix": "_bg_light", "split_by": "fraction", "fractions": {"val": 0.3, "test": 0.3}}
    cfg.update(kw)
    return cfg


def test_synthetic_samples_name_files_by_split() -> None:
    data = {"source": "synthetic", "inference": "",
            "synthetic": {"root": "r", "counts": {"train": 2, "val": 1, "test": 1}}}
    samples = build_samples(data)
    assert [s.name for s in samples] == ["synth_train_0000", "synth_train_0001", "synth_val_0000", "synth_test_0000"]
    assert samples[0].noisy == Path("r/train/noisy/synth_train_0000_bg_flare.h5")
    assert samples[-1].clean == Path("r/test/clean/synth_test_0000_bg_light.h5")


def test_folder_pairs_by_suffix_and_hash_split_is_stable(tmp_path: Path) -> None:
    for i in range(40):
        _touch(tmp_path / "noisy" / f"s{i:02d}_bg_flare.h5")
        _touch(tmp_path / "clean" / f"s{i:02d}_bg_light.h5")
    samples = folder_samples(_folders_cfg(tmp_path))
    assert len(samples) == 40
    assert {s.split for s in samples} == {"train", "val", "test"}
    assert all(s.clean == tmp_path / "clean" / f"{s.name}_bg_light.h5" for s in samples)
    # Adding a file moves no other file between splits.
    _touch(tmp_path / "noisy" / "zz_bg_flare.h5")
    _touch(tmp_path / "clean" / "zz_bg_light.h5")
    again = {s.name: s.split for s in folder_samples(_folders_cfg(tmp_path))}
    assert all(again[s.name] == s.split for s in samples)


def test_missing_partner_is_named(tmp_path: Path) -> None:
    _touch(tmp_path / "noisy" / "a_bg_flare.h5")
    (tmp_path / "clean").mkdir()
    with pytest.raises(SampleError, match="a_bg_flare.h5 has no clean partner"):
        folder_samples(_folders_cfg(tmp_path))


def test_split_by_folders(tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        _touch(tmp_path / "noisy" / split / f"{split}x_bg_flare.h5")
        _touch(tmp_path / "clean" / split / f"{split}x_bg_light.h5")
    samples = folder_samples(_folders_cfg(tmp_path, split_by="folders"))
    assert {(s.name, s.split) for s in samples} == {("trainx", "train"), ("valx", "val"), ("testx", "test")}


def test_names_must_be_unique_and_plain() -> None:
    with pytest.raises(SampleError, match="used by both"):
        check_names([Sample("a", "train", Path("x/a.h5"), None), Sample("a", "test", Path("y/a.h5"), None)])
    with pytest.raises(SampleError, match="not a plain file name"):
        check_names([Sample("a b/c", "train", Path("x.h5"), None)])
    with pytest.raises(SampleError, match="'summary' .* is reserved"):
        check_names([Sample("summary", "test", Path("x/summary.h5"), None)])
