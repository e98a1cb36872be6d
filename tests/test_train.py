"""Training: config, loss, checkpoints, resume after a kill, early stopping, DDP on 2 CPU processes."""
from __future__ import annotations

import math

import csv
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from _trainkit import TinyConv, make_files, voxel_pair, write_pair_file
from evdenoise.artifacts import read_voxels
from evdenoise.checkpoint import load_checkpoint, load_model, save_model
from evdenoise.train import TrainConfig, loss_terms, train

torch.set_num_threads(1)
HERE = Path(__file__).parent
TINY = {"name": "test_tiny_conv"}
BASE = {"patch": [8, 8], "batch_size": 2, "lr": 1e-2, "warmup": 2, "threads": 1, "device": "cpu"}


def history(out: Path) -> list[dict[str, float]]:
    with open(out / "history.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def script_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_files(tmp_path_factory.mktemp("vox"), 3)


def test_config_from_dict_and_errors() -> None:
    cfg = TrainConfig.from_dict({"patch": 32, "amp": "auto", "lr": 1, "augment": {"rot90": False}})
    assert cfg.patch == (32, 32) and cfg.amp is None and cfg.lr == 1.0 and not cfg.augment.rot90
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig.from_dict(None) == TrainConfig()
    with pytest.raises(ValueError, match=r"unknown train setting\(s\) \['epochs'\].*steps"):
        TrainConfig.from_dict({"epochs": 3})
    for bad in ({"loss": "ssim"}, {"steps": 0}, {"patch": [8]}, {"optimizer": "sgd"}, {"lr": -1.0},
                {"changed_crop_p": 2.0}, {"device": "tpu"}, {"steps": 2.5}, {"amp": "yes"}):
        with pytest.raises(ValueError, match="train\\."):
            TrainConfig.from_dict(bad)


def test_loss_weights() -> None:
    raw = torch.tensor([0.0, 0.0, 1.0, 2.0])
    label = torch.tensor([0.0, 1.0, 1.0, 0.0])
    pred = torch.tensor([1.0, 1.0, 1.0, 1.0])
    num, den = loss_terms(pred, label, raw, TrainConfig(loss="mse"))
    assert float(num / den) == pytest.approx((1 + 0 + 0 + 1) / 4)
    num, den = loss_terms(pred, label, raw, TrainConfig(loss="mse", empty_weight=0.0))
    assert float(num / den) == pytest.approx(1 / 3)  # the empty cell no longer counts
    num, den = loss_terms(pred, label, raw, TrainConfig(changed_weight=3.0, loss="l1"))
    assert float(num / den) == pytest.approx((1 + 0 + 0 + 3) / (1 + 3 + 1 + 3))
    num, den = loss_terms(pred * 3, label, raw, TrainConfig(loss="huber", huber_delta=1.0))
    assert float(num / den) == pytest.approx((2.5 + 1.5 + 1.5 + 2.5) / 4)


def test_keep_bce_scores_kept_shares_per_input_event() -> None:
    raw = torch.tensor([0.0, 4.0, 2.0, -2.0, 1.0])
    label = torch.tensor([3.0, 2.0, 2.0, -1.0, 0.0])  # clean shares: -, 1/2, 1, 1/2, 0
    cfg = TrainConfig(loss="keep_bce")
    perfect = torch.tensor([9.0, 2.0, 2.0, -1.0, 0.0])  # the empty input cell carries no weight
    num, den = loss_terms(perfect, label, raw, cfg)
    entropy = -math.log(0.5)  # the least a share of 1/2 can cost
    assert float(den) == 9 and float(num / den) == pytest.approx((4 + 2) * entropy / 9, abs=1e-4)
    keep_all = raw.clone()
    worse = float(torch.div(*loss_terms(keep_all, label, raw, cfg)))
    assert worse > float(num / den)
    # the event that should go, kept: -log(1e-6) for its one event
    assert float(loss_terms(perfect + torch.tensor([0, 0, 0, 0, 1.0]), label, raw, cfg)[0]) == pytest.approx(
        float(num) - math.log(1e-6), rel=1e-3)


def test_model_file_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyConv(2).eval()
    meta = {"model": {"name": "test_tiny_conv", "in_channels": 2}, "voxel": {"bins": 4}, "train_size": [8, 8]}
    save_model(tmp_path / "m.pt", model, meta)
    raw = torch.load(tmp_path / "m.pt", weights_only=True)  # no pickled code inside
    assert raw["meta"] == meta
    loaded, loaded_meta = load_model(tmp_path / "m.pt")
    x = torch.randn(2, 2, 4, 9, 7)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded_meta == meta and not loaded.training
    with pytest.raises(TypeError, match="weights-only"):
        save_model(tmp_path / "bad.pt", model, {**meta, "path": tmp_path})
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")


def test_training_reduces_loss_and_writes_outputs(files: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    path = train({**BASE, "steps": 80, "val_every": 20, "loss": "mse"}, TINY, files[:2], files[2:], out, progress=False,
                 extra_meta={"decode": "sample"})
    assert path == out / "model.pt"
    rows = history(out)
    assert [r["step"] for r in rows] == [20, 40, 60, 80]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    # Better than passing the noisy input through (what the tiny net can learn: drop isolated counts).
    noisy, clean = read_voxels(files[2], "raw"), read_voxels(files[2], "label")
    assert rows[-1]["val_loss"] < 0.9 * float(np.mean((noisy - clean) ** 2))
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["lr"] < rows[1]["lr"]  # cosine decay
    assert (out / "checkpoints" / "last.pt").is_file() and (out / "checkpoints" / "best.pt").is_file()
    model, meta = load_model(path)
    assert meta["model"] == {"name": "test_tiny_conv", "in_channels": 1}
    assert meta["voxel"] == {"bins": 4, "channels": 1, "assignment": "nearest"}
    assert meta["segment_us"] == 20000 and meta["train_size"] == [24, 28] and meta["patch"] == [8, 8]
    assert meta["decode"] == "sample" and meta["train_files"] == ["pair0.h5", "pair1.h5"]
    assert len(meta["data_sha256"]) == 64 and meta["train"]["steps"] == 80
    best = min(rows, key=lambda r: r["val_loss"])
    assert meta["step"] == best["step"] and meta["val_loss"] == pytest.approx(best["val_loss"])


def test_mismatched_voxel_settings_are_rejected(files: list[Path], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    other = write_pair_file(tmp_path / "bilinear.h5", *voxel_pair(rng, (2, 1, 4, 24, 28)), assignment="bilinear")
    with pytest.raises(ValueError, match="bilinear.h5"):
        train({**BASE, "steps": 2}, TINY, [files[0], other], [], tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="in_channels=2"):
        train({**BASE, "steps": 2}, {**TINY, "in_channels": 2}, files[:1], [], tmp_path / "y", progress=False)


def test_resume_after_kill_matches_uninterrupted_run(files: list[Path], tmp_path: Path) -> None:
    cfg = {**BASE, "steps": 150, "val_every": 10}
    args = {"cfg": cfg, "model": TINY, "train": [str(f) for f in files[:2]], "val": [str(files[2])]}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(HERE / "_trainkit.py"), json.dumps({**args, "out": str(killed)})],
                            env=script_env(), stderr=subprocess.PIPE)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()
    _, err = proc.communicate()
    assert last.exists(), err.decode()[-2000:]
    stopped_at = load_checkpoint(last)["step"]
    assert 10 <= stopped_at < 150 and not (killed / "model.pt").exists()

    train(cfg, TINY, files[:2], files[2:], killed, progress=False)  # resumes
    train(cfg, TINY, files[:2], files[2:], tmp_path / "straight", progress=False)
    resumed, straight = history(killed), history(tmp_path / "straight")
    assert [r["step"] for r in resumed] == list(range(10, 151, 10))
    for a, b in zip(resumed, straight):
        assert (a["train_loss"], a["val_loss"], a["lr"]) == (b["train_loss"], b["val_loss"], b["lr"])
    wa, wb = weights(killed / "model.pt"), weights(tmp_path / "straight" / "model.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wb)


def test_changed_config_starts_fresh_and_finished_run_is_kept(files: list[Path], tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "run"
    cfg = {**BASE, "steps": 10, "val_every": 5}
    train(cfg, TINY, files[:1], files[2:], out, progress=False)
    first = history(out)
    before = weights(out / "model.pt")
    train(cfg, TINY, files[:1], files[2:], out, progress=False)  # already finished: nothing retrained
    assert history(out) == first
    assert all(torch.equal(before[k], v) for k, v in weights(out / "model.pt").items())
    with caplog.at_level(logging.WARNING, logger="evdenoise.train"):
        train({**cfg, "lr": 1e-3}, TINY, files[:1], files[2:], out, progress=False)
    assert "different configuration; starting fresh" in caplog.text
    again = history(out)
    assert [r["step"] for r in again] == [5, 10] and again[0]["train_loss"] != first[0]["train_loss"]


def test_early_stopping_and_plateau(files: list[Path], tmp_path: Path) -> None:
    # A model whose output never changes: every validation after the first is "no improvement".
    cfg = {**BASE, "steps": 100, "val_every": 2, "patience": 3, "schedule": "plateau", "warmup": 0,
           "plateau_patience": 0, "plateau_factor": 0.5}
    train(cfg, {"name": "test_frozen"}, files[:1], files[2:], tmp_path / "run", progress=False)
    rows = history(tmp_path / "run")
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert [r["lr"] for r in rows] == [1e-2, 1e-2, 5e-3, 2.5e-3]  # halved after each flat validation
    with pytest.raises(ValueError, match="need validation files"):
        train(cfg, TINY, files[:1], [], tmp_path / "noval", progress=False)


def test_ddp_two_cpu_processes_match_one_process(files: list[Path], tmp_path: Path) -> None:
    """torchrun with 2 gloo ranks x 2 crops trains exactly like 1 process x 4 crops."""
    cfg = {**BASE, "steps": 6, "val_every": 3, "batch_size": 2}
    args = {"cfg": cfg, "model": TINY, "train": [str(f) for f in files[:2]], "val": [str(files[2])],
            "out": str(tmp_path / "ddp")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "_trainkit.py"), json.dumps(args)]
    done = subprocess.run(cmd, env=script_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    train({**cfg, "batch_size": 4}, TINY, files[:2], files[2:], tmp_path / "single", progress=False)
    ddp, single = history(tmp_path / "ddp"), history(tmp_path / "single")
    assert [r["step"] for r in ddp] == [3, 6]
    for a, b in zip(ddp, single):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    wa, wb = weights(tmp_path / "ddp" / "model.pt"), weights(tmp_path / "single" / "model.pt")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wb)
    assert load_checkpoint(tmp_path / "ddp" / "model.pt")["meta"]["world_size"] == 2


def test_fine_tuning_starts_from_the_init_weights(files: list[Path], tmp_path: Path) -> None:
    first = train({**BASE, "steps": 20, "val_every": 20}, TINY, files[:2], files[2:], tmp_path / "a", progress=False)
    start, _ = load_model(first)
    # Zero steps of learning (lr ~ 0) keep exactly the weights training started from.
    tuned = train({**BASE, "steps": 1, "val_every": 1, "lr": 1e-12, "warmup": 0, "init": str(first)},
                  {"name": "test_frozen"}, files[:2], files[2:], tmp_path / "b", progress=False)
    model, meta = load_model(tuned)
    assert meta["model"] == {"name": "test_tiny_conv", "in_channels": 1}  # the init model's architecture
    for (name, a), b in zip(start.state_dict().items(), model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-9), name
    fresh, _ = load_model(train({**BASE, "steps": 1, "val_every": 1, "lr": 1e-12, "warmup": 0}, TINY, files[:2],
                                files[2:], tmp_path / "c", progress=False))
    assert not torch.equal(fresh.a.weight, model.a.weight)
    with pytest.raises(ValueError, match="train.init.*voxels"):
        other = write_pair_file(tmp_path / "other.h5", *voxel_pair(np.random.default_rng(1), (2, 2, 4, 8, 8)))
        train({**BASE, "steps": 1, "init": str(first)}, TINY, [other], [], tmp_path / "d", progress=False)


def test_model_file_from_another_version_is_a_clear_error(tmp_path: Path) -> None:
    model = TinyConv(1)
    meta = {"model": {"name": "test_tiny_conv", "in_channels": 1, "future_setting": 3}, "evdenoise_version": "9.0"}
    save_model(tmp_path / "new.pt", model, meta)
    with pytest.raises(ValueError, match=r"new.pt: made by evdenoise 9.0.*cannot build"):
        load_model(tmp_path / "new.pt")
    payload = torch.load(tmp_path / "new.pt", weights_only=True)
    torch.save({**payload, "format_version": 99}, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match="newer.pt: model file format 99 is newer"):
        load_model(tmp_path / "newer.pt")


def test_fine_tuning_from_the_shipped_pretrained_model(tmp_path: Path) -> None:
    from evdenoise.pretrained import MODEL_PATH

    shipped, meta = load_model(MODEL_PATH)
    rng = np.random.default_rng(0)
    pair = voxel_pair(rng, (2, 2, 8, 32, 32))
    vox = [write_pair_file(tmp_path / f"{i}.h5", *pair, assignment="bilinear") for i in range(2)]
    tuned = train({**BASE, "patch": [32, 32], "steps": 1, "val_every": 1, "lr": 1e-12, "warmup": 0,
                   "init": "pretrained"}, TINY, vox[:1], vox[1:], tmp_path / "run", progress=False)
    model, tuned_meta = load_model(tuned)
    assert tuned_meta["model"] == meta["model"]
    for (name, a), b in zip(shipped.state_dict().items(), model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_train_settings_name_exactly_the_registered_losses() -> None:
    # train_config (torch-free, read at workflow parse time) lists the loss names that losses registers.
    from evdenoise.losses import LOSSES
    from evdenoise.train_config import LOSS_NAMES

    assert sorted(LOSSES) == sorted(LOSS_NAMES)
