"""The ``evdenoise`` command: each stage of the workflow, usable outside Snakemake."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from collections.abc import Sequence

from . import defaults
from .events import EventFileError
from .formats import TextFormat

log = logging.getLogger("evdenoise")


def _text(args: argparse.Namespace) -> TextFormat:
    return TextFormat(columns=args.columns, time_unit=args.time_unit)


def _check(args: argparse.Namespace) -> None:
    from .events import scan_stream

    for path in args.files:  # one pass a block at a time: any length in bounded memory
        s = scan_stream(path, width=args.width, height=args.height, text=_text(args))
        print(f"{path}: {s.count} events, {s.width}x{s.height}, {s.t_last - s.t_first} us, "
              f"{s.on} ON / {s.count - s.on} OFF")


def _convert(args: argparse.Namespace) -> None:
    from .stages import convert_dir, convert_file

    kw = dict(width=args.width, height=args.height, sort=args.sort, text=_text(args))
    if Path(args.input).is_dir():
        outs = convert_dir(args.input, args.output, **kw)
        print(f"{len(outs)} files -> {args.output}")
    else:
        s = convert_file(args.input, args.output, **kw)
        print(f"{args.input}: {s.count} events, {s.width}x{s.height} -> {args.output}")


def _split(args: argparse.Namespace) -> None:
    from .stages import split_file

    split_file(args.noisy, args.clean, args.output, segment_us=args.segment_us, grid=args.grid,
               width=args.width, height=args.height)


def _voxelize(args: argparse.Namespace) -> None:
    from .stages import voxelize_file
    from .voxel import VoxelSpec

    voxelize_file(args.segments, args.output, VoxelSpec(args.bins, args.channels, args.assignment))


def _synth(args: argparse.Namespace) -> None:
    from .synth import DEFAULT_COUNTS, SynthConfig, synthesize

    import yaml

    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--param {item!r}: write KEY=VALUE, e.g. merge_prob=0.5")
        params[key] = yaml.safe_load(value)
    given = {"width": args.width, "height": args.height, "duration_us": args.duration_us}
    cfg = SynthConfig.from_dict({k: v for k, v in given.items() if v is not None} | params)
    counts = {split: getattr(args, split) for split in DEFAULT_COUNTS}
    counts = {split: DEFAULT_COUNTS[split] if n is None else n for split, n in counts.items()}
    manifest = synthesize(args.root, counts=counts, cfg=cfg, seed=args.seed, previews=args.previews,
                          backgrounds=args.background)
    print(f"{len(manifest)} pairs in {args.root} (manifest: {Path(args.root) / 'manifest.csv'})")


def _train(args: argparse.Namespace) -> None:
    import yaml

    from .train import TrainConfig, train

    cfg = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    train_cfg = TrainConfig.from_dict({**cfg.get("train", {}), **({"device": args.device} if args.device else {})})
    model = train(train_cfg, cfg.get("model", {"name": "unet3d"}), _h5s(args.train), _h5s(args.val), args.output)
    print(model)


def _h5s(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(p.glob("*.h5")) if p.is_dir() else [p]  # voxel files: always this project's HDF5
    return out


def _denoise(args: argparse.Namespace) -> None:
    from .denoise import denoise_dir, denoise_file
    from .pretrained import require_model

    model = args.model or require_model()
    kw = dict(decode=args.decode, mode=args.mode, batch_size=args.batch_size, device=args.device, seed=args.seed,
              width=args.width, height=args.height, text=_text(args))
    if args.keep_threshold is not None:
        kw["keep_threshold"] = args.keep_threshold
    if Path(args.input).is_dir():
        denoise_dir(args.input, args.output, model, **kw)
    else:
        denoise_file(args.input, args.output, model, **kw)


def _evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate_dirs, write_csv, write_summary

    out = Path(args.output)
    per_window = evaluate_dirs(args.pred, args.gt, input_dir=args.input)
    per_window.insert(0, "method", args.method)
    write_csv(per_window, out / "per_window.csv")
    summary = write_summary(per_window, out / "summary.csv", out / "summary.md", out / "comparison.png")
    print(summary.to_string())


def _plot(args: argparse.Namespace) -> None:
    from .events import read_events
    from .plot import plot_events

    paths = [args.file, *args.compare]
    plot_events([read_events(p) for p in paths], [Path(p).stem for p in paths], args.output, windows=args.windows,
                segment_us=args.segment_us)


def _sensor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--width", type=int, help="sensor width when the file has no width attribute")
    p.add_argument("--height", type=int, help="sensor height when the file has no height attribute")


def _text_args(p: argparse.ArgumentParser) -> None:
    fmt = TextFormat()
    p.add_argument("--columns", default=fmt.columns, help="CSV/TXT column order, a permutation of txyp")
    p.add_argument("--time-unit", choices=["us", "s"], default=fmt.time_unit, help="CSV/TXT timestamps")


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="validate event files (any format of evdenoise.formats) and print a summary")
    p.add_argument("files", nargs="+")
    _sensor_args(p)
    _text_args(p)
    p.set_defaults(func=_check)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="an event file in any format (or a folder of them) -> HDF5 (/events/{t,x,y,p})")
    p.add_argument("input")
    p.add_argument("output", help="output .h5 file, or folder when the input is a folder")
    p.add_argument("--sort", action="store_true", help="sort timestamps that decrease instead of failing")
    _sensor_args(p)
    _text_args(p)
    p.set_defaults(func=_convert)


def _add_split(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help="cut a file (and its clean partner) into fixed windows")
    p.add_argument("noisy")
    p.add_argument("--clean")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--segment-us", type=int, default=defaults.SEGMENT_US)
    p.add_argument("--grid", choices=["relative", "absolute"], default=defaults.GRID)
    _sensor_args(p)
    p.set_defaults(func=_split)


def _add_voxelize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("voxelize", help="encode a segments file as voxel grids")
    p.add_argument("segments")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--bins", type=int, default=defaults.BINS)
    p.add_argument("--channels", type=int, choices=[1, 2], default=defaults.CHANNELS)
    p.add_argument("--assignment", choices=["nearest", "bilinear"], default=defaults.ASSIGNMENT)
    p.set_defaults(func=_voxelize)


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate the synthetic paired flare data set")
    p.add_argument("root")
    for split in ("train", "val", "test"):
        p.add_argument(f"--{split}", type=int, help=f"{split} pairs (default: evdenoise.synth.DEFAULT_COUNTS)")
    for name in ("width", "height", "duration-us"):
        p.add_argument(f"--{name}", type=int, help="default: evdenoise.synth.SynthConfig's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--previews", action="store_true", help="write a preview PNG per pair")
    p.add_argument("--background", action="append", default=[], type=Path,
                   help="real recording to use as background (repeatable)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any SynthConfig field, value in YAML (repeatable), e.g. merge_prob=0.5 or "
                        "'flicker_hz=[100, 144]'")
    p.set_defaults(func=_synth)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on voxel files")
    p.add_argument("--config", help="YAML with 'model' and 'train' sections (as in config/config.yaml)")
    p.add_argument("--train", nargs="+", required=True, help="voxel files or folders")
    p.add_argument("--val", nargs="+", required=True, help="voxel files or folders")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("-o", "--output", required=True, help="output folder (model.pt, history.csv, checkpoints)")
    p.set_defaults(func=_train)


def _add_denoise(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("denoise", help="denoise an event file (any format), or every event file of a folder, into HDF5")
    p.add_argument("--model", help="model file (default: the pretrained model shipped with evdenoise)")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--decode", choices=["mask", "sample", "spread"], help="default: the model's own")
    p.add_argument("--keep-threshold", type=float,
                   help="mask decoder: the fraction of r*n that keeps one more event (0.5 = round; "
                        f"default {defaults.KEEP_THRESHOLD})")
    p.add_argument("--mode", choices=["pad", "multiscale", "resize", "tile"], default=defaults.PREDICT_MODE,
                   help="how a frame size other than the training's is handled (evdenoise.infer)")
    p.add_argument("--batch-size", type=int, default=defaults.PREDICT_BATCH_SIZE)
    p.add_argument("--device", default=defaults.DEVICE)
    p.add_argument("--seed", type=int, default=defaults.DECODE_SEED)
    _sensor_args(p)
    _text_args(p)
    p.set_defaults(func=_denoise)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score denoised files against ground truth")
    p.add_argument("--pred", required=True, help="folder of denoised files")
    p.add_argument("--gt", required=True, help="folder of ground-truth files")
    p.add_argument("--input", help="folder of the noisy inputs: windows are cut on them, as in the workflow")
    p.add_argument("--method", default="denoised", help="name of the method in the tables")
    p.add_argument("-o", "--output", default="evaluation", help="folder for the CSVs, table and figure")
    p.set_defaults(func=_evaluate)


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="event images of a file, optionally beside others")
    p.add_argument("file")
    p.add_argument("--compare", nargs="*", default=[])
    p.add_argument("--windows", action="store_true", help="one row per window of --segment-us")
    p.add_argument("--segment-us", type=int, default=defaults.SEGMENT_US)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=_plot)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evdenoise", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_check, _add_convert, _add_split, _add_voxelize, _add_synth, _add_train, _add_denoise,
                _add_evaluate, _add_plot):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (EventFileError, ValueError, FileNotFoundError) as err:
        print(f"evdenoise: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
