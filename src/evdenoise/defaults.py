"""The library's defaults: the values of ``config/config.yaml``, one constant each.

Functions, dataclasses and the CLI take their defaults from here, so leaving a key out of the
config (or calling the library directly) gives the tuned setup, never an older one.
``tests/test_defaults.py`` fails when this module and config.yaml drift apart. Plain values and
no imports: the CLI and the workflow's parse read them at no cost.
"""

# windows
SEGMENT_US = 20000  # window length (100 ms -> 5 windows)
GRID = "relative"  # windows start at the file's first event

# voxel (docs/ablations.md: 2 channels and bilinear bins beat 1 channel and nearest)
BINS = 8
CHANNELS = 2
ASSIGNMENT = "bilinear"

# predict
PREDICT_MODE = "multiscale"
PREDICT_BATCH_SIZE = 4
DEVICE = "auto"

# decode
DECODE = "mask"  # keeps the input events the model keeps: never invents events or shifts timestamps
DECODE_SEED = 0
KEEP_THRESHOLD = 0.25  # mask: the fraction of r*n that keeps one more event (leans towards keeping)

# data.folders: <stem><noisy suffix> pairs with <stem><clean suffix> (E-Deflare's naming)
PAIRING = ("_bg_flare", "_bg_light")
