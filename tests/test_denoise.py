"""Denoising whole event files outside Snakemake, on the real sensor recordings."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from evdenoise.checkpoint import save_model
from evdenoise.denoise import denoise_dir, denoise_events, denoise_events_at, denoise_file
from evdenoise.events import Events, read_attrs, read_events, write_events
from evdenoise.models import build_model

torch.set_num_threads(1)
REAL = Path(__file__).parents[2] / "shared/data/real"
PERSON = REAL / "dvxplorer_320x240_person.h5"
SPINNER = REAL / "prophesee_640x480_spinner.h5"


def model_file(path: Path, model: dict, channels: int = 1, decode: str = "mask") -> Path:
    torch.manual_seed(0)
    cfg = {**model, "in_channels": channels}
    meta = {"model": cfg, "voxel": {"bins": 8, "channels": channels, "assignment": "nearest"},
            "segment_us": 20000, "grid": "relative", "train_size": [64, 64], "decode": decode}
    save_model(path, build_model(cfg), meta)
    return path


def test_identity_with_mask_returns_every_input_event(tmp_path: Path) -> None:
    model = model_file(tmp_path / "identity.pt", {"name": "identity"})
    outs = denoise_dir(REAL, tmp_path / "out", model, progress=False)
    assert sorted(p.name for p in outs) == sorted(p.name for p in REAL.glob("*.h5"))
    for out in outs:
        src = REAL / out.name
        assert read_events(out).equals(read_events(src)), out.name
        attrs = read_attrs(out)
        assert attrs["source"] == read_attrs(src)["source"]
        assert (attrs["width"], attrs["height"]) == (read_attrs(src)["width"], read_attrs(src)["height"])
        assert attrs["producer"].startswith("evdenoise") and attrs["decode"] == "mask"


def test_fresh_unet_mask_is_exact_and_sample_stays_in_range(tmp_path: Path) -> None:
    model = model_file(tmp_path / "unet.pt", {"name": "unet3d", "f_maps": [4, 8], "output": "residual"}, channels=2)
    # 51 ms of the recording (CPU time): 3 windows, the last one partial and ending mid-bin.
    full = read_events(PERSON)
    events = full.between(int(full.t[0]), int(full.t[0]) + 51_234)
    cut = tmp_path / "person_50ms.h5"
    write_events(cut, events, attrs=read_attrs(PERSON))
    # A fresh residual U-Net is exactly the identity.
    assert denoise_events(events, model, device="cpu").equals(events)

    out = denoise_file(cut, tmp_path / "person.h5", model, decode="sample", device="cpu", progress=False)
    got = read_events(out)
    assert (got.width, got.height) == (320, 240)
    assert len(got) > 0.9 * len(events) and np.all(np.diff(got.t) >= 0)
    # The sampled partial last window must not spill past the input's last event.
    assert got.t.min() >= events.t[0] and got.t.max() <= events.t[-1]
    assert int(got.x.max()) < 320 and int(got.y.max()) < 240
    assert read_attrs(out)["decode"] == "sample"
    again = denoise_file(cut, tmp_path / "again.h5", model, decode="sample", device="cpu", progress=False)
    assert read_events(again).equals(got)  # deterministic given the seed


def test_tile_and_resize_modes_run_end_to_end(tmp_path: Path) -> None:
    model = model_file(tmp_path / "identity.pt", {"name": "identity"})
    events = read_events(SPINNER)
    tiled = denoise_events(events, model, mode="tile", tile=(128, 128), overlap=32, device="cpu")
    assert tiled.equals(events)
    resized = denoise_events(events, model, mode="resize", decode="spread", device="cpu")
    assert (resized.width, resized.height) == (640, 480)
    assert len(resized) and resized.t.min() >= events.t[0] and resized.t.max() <= events.t[-1]


def test_empty_and_bad_inputs(tmp_path: Path) -> None:
    model = model_file(tmp_path / "identity.pt", {"name": "identity"})
    empty = tmp_path / "empty.h5"
    write_events(empty, Events.empty(32, 16), attrs={"source": "test"})
    out = denoise_file(empty, tmp_path / "out.h5", model, progress=False)
    assert len(read_events(out)) == 0 and read_attrs(out)["width"] == 32
    with pytest.raises(FileNotFoundError, match="nothing: no such folder"):
        denoise_dir(tmp_path / "nothing", tmp_path / "o", model)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("no events here")
    with pytest.raises(FileNotFoundError, match="notes: no event files"):
        denoise_dir(tmp_path / "notes", tmp_path / "o", model)
    shutil.copy(PERSON, tmp_path / "in.h5")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        denoise_file(tmp_path / "in.h5", tmp_path / "o.h5", tmp_path / "missing.pt")


def test_streamed_file_gives_exactly_the_in_memory_events_whatever_the_block(tmp_path: Path, monkeypatch) -> None:
    import functools

    import evdenoise.denoise as dn
    from evdenoise.events import stream_events

    model = model_file(tmp_path / "unet.pt", {"name": "unet3d", "f_maps": [4, 8]}, channels=2)
    full = read_events(PERSON)
    events = full.between(int(full.t[0]), int(full.t[0]) + 90_000)
    write_events(tmp_path / "in.h5", events, attrs=read_attrs(PERSON))
    expected = denoise_events(events, model, decode="sample", device="cpu", seed=3)
    for block in (997, 1 << 22):  # windows and runs of windows cut across blocks, or one block
        monkeypatch.setattr(dn, "stream_events", functools.partial(stream_events, block=block))
        out = denoise_file(tmp_path / "in.h5", tmp_path / f"out{block}.h5", model, decode="sample", device="cpu",
                           seed=3, progress=False)
        assert read_events(out).equals(expected)


def test_a_multi_day_gap_costs_no_memory_or_windows(tmp_path: Path) -> None:
    import tracemalloc

    model = model_file(tmp_path / "identity.pt", {"name": "identity"})
    full = read_events(PERSON)
    burst = full.between(int(full.t[0]), int(full.t[0]) + 30_000)
    days = 3 * 86_400 * 10**6  # 13 million 20 ms windows between the bursts
    later = Events(burst.t + days, burst.x, burst.y, burst.p, burst.width, burst.height)
    events = Events.concatenate([burst, later])
    write_events(tmp_path / "gap.h5", events)
    tracemalloc.start()
    out = denoise_file(tmp_path / "gap.h5", tmp_path / "out.h5", model, device="cpu", progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert read_events(out).equals(events)  # identity + mask: every event back, both bursts
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # a window per 20 ms of the gap would be GBs


def test_workflow_stages_over_a_multi_day_gap_hold_only_windows_with_events(tmp_path: Path) -> None:
    """split -> voxelize -> predict -> decode over two 30 ms bursts 3 days apart: 4 windows, not 13 million."""
    from evdenoise.artifacts import read_segments, voxel_meta
    from evdenoise.stages import decode_file, predict_file, split_file, voxelize_file
    from evdenoise.voxel import VoxelSpec

    model = model_file(tmp_path / "identity.pt", {"name": "identity"})
    full = read_events(PERSON)
    burst = full.between(int(full.t[0]), int(full.t[0]) + 30_000)
    later = Events(burst.t + 3 * 86_400 * 10**6, burst.x, burst.y, burst.p, burst.width, burst.height)
    events = Events.concatenate([burst, later])
    write_events(tmp_path / "gap.h5", events)
    split_file(tmp_path / "gap.h5", None, tmp_path / "seg.h5")
    windows = read_segments(tmp_path / "seg.h5").windows
    assert len(windows) == 4 and windows.start[2] - windows.start[0] == 3 * 86_400 * 10**6
    voxelize_file(tmp_path / "seg.h5", tmp_path / "vox.h5", VoxelSpec(8, 1, "nearest"))
    assert voxel_meta(tmp_path / "vox.h5").shape[0] == 4
    predict_file(model, tmp_path / "vox.h5", tmp_path / "pred.h5", device="cpu")
    decode_file(tmp_path / "pred.h5", tmp_path / "seg.h5", tmp_path / "gap.h5", tmp_path / "out.h5", strategy="mask")
    assert read_events(tmp_path / "out.h5").equals(events)


def test_workflow_stages_and_the_cli_give_the_same_events(tmp_path: Path) -> None:
    """split -> voxelize -> predict -> decode (the workflow's rules) against ``evdenoise denoise``: one path."""
    from evdenoise.stages import decode_file, predict_file, split_file, voxelize_file
    from evdenoise.voxel import VoxelSpec

    torch.manual_seed(1)
    cfg = {"name": "unet3d", "f_maps": [4, 8], "in_channels": 2}
    model = build_model(cfg)
    with torch.no_grad():  # a fresh U-Net is the identity: perturb it so decoding has choices to make
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    spec = {"bins": 8, "channels": 2, "assignment": "bilinear"}
    save_model(tmp_path / "m.pt", model, {"model": cfg, "voxel": spec, "segment_us": 20000, "grid": "relative",
                                          "train_size": [64, 64], "decode": "sample"})
    full = read_events(PERSON)
    write_events(tmp_path / "in.h5", full.between(int(full.t[0]), int(full.t[0]) + 70_000), attrs=read_attrs(PERSON))
    split_file(tmp_path / "in.h5", None, tmp_path / "seg.h5")
    voxelize_file(tmp_path / "seg.h5", tmp_path / "vox.h5", VoxelSpec(**spec))
    predict_file(tmp_path / "m.pt", tmp_path / "vox.h5", tmp_path / "pred.h5", device="cpu")
    for strategy in ("sample", "mask"):
        decode_file(tmp_path / "pred.h5", tmp_path / "seg.h5", tmp_path / "in.h5", tmp_path / f"wf_{strategy}.h5",
                    strategy=strategy, seed=5)
        cli = denoise_file(tmp_path / "in.h5", tmp_path / f"cli_{strategy}.h5", tmp_path / "m.pt", decode=strategy,
                           device="cpu", seed=5, progress=False)
        wf = read_events(tmp_path / f"wf_{strategy}.h5")
        assert 0 < len(wf) and read_events(cli).equals(wf)
        assert cli.read_bytes() == (tmp_path / f"wf_{strategy}.h5").read_bytes()  # the very same file


def test_several_keep_thresholds_from_one_prediction_match_one_call_each(tmp_path: Path) -> None:
    model = model_file(tmp_path / "gate.pt", {"name": "unet3d", "f_maps": [4, 8], "output": "gate"}, channels=2)
    full = read_events(PERSON)
    events = full.between(int(full.t[0]), int(full.t[0]) + 45_000)
    thresholds = [0.9, 0.25]  # a fresh gate is about 0.5 everywhere: the one keeps far fewer events
    together = denoise_events_at(events, model, thresholds, device="cpu")
    alone = [denoise_events(events, model, device="cpu", keep_threshold=th) for th in thresholds]
    assert all(a.equals(b) for a, b in zip(together, alone))
    assert len(together[0]) < len(together[1]) <= len(events)
