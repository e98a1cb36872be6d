"""The ``evdenoise`` command: bad input gives a clear error, a non-zero exit and no output."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from evdenoise.cli import main
from evdenoise.events import read_events
from test_events import BAD_FILES, good, truncated

BAD = {**BAD_FILES, "truncated": None}


@pytest.mark.parametrize("problem", list(BAD))
def test_bad_input_exits_non_zero_names_file_and_leaves_nothing(tmp_path: Path, tiny_events, problem: str,
                                                                capsys) -> None:
    bad = truncated(tmp_path, tiny_events) if problem == "truncated" else BAD_FILES[problem](good(), tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert main(["split", str(bad), "-o", str(out_dir / "seg.h5")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "error" in err
    if problem != "truncated":
        assert problem in err
    assert list(out_dir.iterdir()) == []


def test_console_script_check_and_split(tmp_path: Path, real_dir: Path) -> None:
    exe = Path(sys.executable).with_name("evdenoise")
    path = real_dir / "prophesee_640x480_spinner.h5"
    proc = subprocess.run([str(exe), "check", str(path)], capture_output=True, text=True, check=True)
    assert "539481 events, 640x480" in proc.stdout
    proc = subprocess.run([str(exe), "check", str(tmp_path / "nope.h5")], capture_output=True, text=True)
    assert proc.returncode == 2 and "nope.h5: file does not exist" in proc.stderr


def test_split_voxelize_denoise_plot_from_the_command_line(tmp_path: Path, real_dir: Path) -> None:
    src = real_dir / "dvxplorer_320x240_person.h5"
    assert main(["split", str(src), "-o", str(tmp_path / "seg.h5")]) == 0
    assert main(["voxelize", str(tmp_path / "seg.h5"), "-o", str(tmp_path / "vox.h5"), "--channels", "2"]) == 0
    assert main(["plot", str(src), "-o", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert read_events(src).t[0] > 0


def test_denoise_file_and_folder_from_the_command_line(tmp_path: Path, real_dir: Path) -> None:
    from test_denoise import model_file

    model = model_file(tmp_path / "identity.pt", {"name": "identity"})
    src = real_dir / "dvxplorer_320x240_person.h5"
    assert main(["denoise", "--model", str(model), str(src), str(tmp_path / "one.h5")]) == 0
    assert read_events(tmp_path / "one.h5").equals(read_events(src))
    assert main(["denoise", "--model", str(model), "--decode", "spread", str(real_dir), str(tmp_path / "all")]) == 0
    assert sorted(p.name for p in (tmp_path / "all").glob("*.h5")) == sorted(p.name for p in real_dir.glob("*.h5"))
    assert main(["denoise", "--model", str(tmp_path / "missing.pt"), str(src), str(tmp_path / "x.h5")]) == 2
    assert not (tmp_path / "x.h5").exists()


def test_denoise_keep_threshold_from_the_command_line(tmp_path: Path, real_dir: Path) -> None:
    from test_denoise import model_file

    # A fresh gated U-Net keeps half of every cell (r = 0.5): with the default threshold 0.25 a lone
    # event (r * n = 0.5) stays, with 1.0 (round down) it goes; a cell of 2 keeps one either way.
    model = model_file(tmp_path / "gate.pt", {"name": "unet3d", "f_maps": [4, 8], "output": "gate"}, channels=2)
    src = real_dir / "dvxplorer_320x240_person.h5"
    assert main(["denoise", "--model", str(model), str(src), str(tmp_path / "default.h5")]) == 0
    assert main(["denoise", "--model", str(model), "--keep-threshold", "1", str(src), str(tmp_path / "down.h5")]) == 0
    n_in, n_default, n_down = (len(read_events(p)) for p in (src, tmp_path / "default.h5", tmp_path / "down.h5"))
    assert n_in > n_default > n_down
    assert main(["denoise", "--model", str(model), "--keep-threshold", "0", str(src), str(tmp_path / "bad.h5")]) == 2
    assert not (tmp_path / "bad.h5").exists()


def test_synth_then_evaluate_from_the_command_line(tmp_path: Path) -> None:
    root = tmp_path / "data"
    assert main(["synth", str(root), "--train", "1", "--val", "1", "--test", "1", "--width", "48",
                 "--height", "32", "--duration-us", "40000"]) == 0
    noisy, clean = root / "test/noisy", root / "test/clean"
    assert [p.name for p in noisy.glob("*.h5")] == ["synth_test_0000_bg_flare.h5"]
    merged = tmp_path / "merged"
    assert main(["synth", str(merged), "--train", "0", "--val", "0", "--test", "1", "--width", "48",
                 "--height", "32", "--duration-us", "40000", "--param", "merge_prob=1"]) == 0
    manifest = pd.read_csv(merged / "manifest.csv")
    assert list(manifest["composition"]) == ["merge"]
    assert read_events(merged / "test/clean/synth_test_0000_bg_light.h5").equals(
        read_events(clean / "synth_test_0000_bg_light.h5"))
    assert main(["synth", str(tmp_path / "x"), "--param", "merge_prob"]) == 2
    assert main(["synth", str(tmp_path / "x"), "--param", "merge_probability=1"]) == 2
    assert not (tmp_path / "x").exists()
    out = tmp_path / "eval"
    # The noisy input scored against its clean partner: the "raw" row of a comparison.
    assert main(["evaluate", "--pred", str(noisy), "--gt", str(clean), "--method", "raw", "-o", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert list(summary.index) == ["raw"] and summary.loc["raw", "windows"] == 2
    assert 0 < summary.loc["raw", "r_f1_mean"] < 1
    assert (out / "summary.md").read_text().startswith("| Method")
    assert (out / "comparison.png").stat().st_size > 1000
