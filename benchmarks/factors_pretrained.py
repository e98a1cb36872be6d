"""The shipped model per generator factor, each set *inside* the training ranges: flare removed / clean kept.

Usage: .venv/bin/python benchmarks/factors_pretrained.py [MODEL|-] [THREADS]
(3 files of 640x480 per factor, or 346x260 for size346; keep_threshold 0.25 and 0.1). Data under results/factors.
"""
import sys
from pathlib import Path
import pandas as pd, torch
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from evdenoise.denoise import denoise_events
from evdenoise.pretrained import MODEL_PATH, load_config
from evdenoise.synth import SynthConfig, synthesize
from quality import read_pair
from quality_pretrained import kept_shares
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
model = Path(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "-" else MODEL_PATH
base = load_config(ROOT / "config" / "pretrained.yaml")["data"]["params"]
V = {"sizes": [[640, 480]]}
F = {
 "base": {},
 "halo_only": {"streak_count": (0, 0), "ghost_count": (0, 0), "veil_prob": 0.0},
 "starburst": {"streak_count": (16, 32), "streak_strength": (0.05, 0.15), "streak_length": (0.6, 1.0), "ghost_count": (0, 0)},
 "ghosts": {"ghost_count": (6, 10), "ghost_chain_prob": 1.0, "streak_count": (0, 0)},
 "dc": {"dc_prob": 1.0},
 "weak_depth": {"dc_prob": 0.0, "modulation_depth": (0.05, 0.15)},
 "full_depth": {"dc_prob": 0.0, "modulation_depth": (0.8, 1.0)},
 "static": {"source_moving_prob": 0.0, "roll_deg_s": (0, 0), "shake": (0, 0), "source_enter_prob": 0.0},
 "fast": {"source_moving_prob": 1.0, "source_speed": (1.0, 2.0)},
 "hz50": {"flicker_hz": (50,), "dc_prob": 0.0},
 "hz144": {"flicker_hz": (144,), "dc_prob": 0.0},
 "size346": {"sizes": [[346, 260]]},
}
rows = []
for i, (name, over) in enumerate(F.items()):
    root = ROOT / "results" / "factors" / name
    if not (root / "manifest.csv").exists():
        synthesize(root, counts={"f": 3}, cfg=SynthConfig.from_dict({**base, **V, **over}), seed=7000 + 10 * i)
    m = pd.read_csv(root / "manifest.csv"); m["root"] = str(root)
    for _, row in m.iterrows():
        raw, label, _ = read_pair(row, {})
        for th in (0.25, 0.1):
            out = denoise_events(raw, model, device="cpu", keep_threshold=th)
            rows.append({"factor": name, "file": row["name"], "th": th, **kept_shares(raw, label, out)})
    d = pd.DataFrame(rows); print(d[d.factor == name].groupby("th")[["flare_share", "flare_removed", "clean_kept"]].mean().assign(factor=name).to_string(), flush=True)
d = pd.DataFrame(rows); d.to_csv(ROOT / "results" / "factors" / f"factors_{model.stem}.csv", index=False)
print(d.groupby(["factor", "th"], sort=False)[["flare_share", "flare_removed", "clean_kept"]].mean().to_string())
