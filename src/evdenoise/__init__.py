"""evdenoise: voxel-domain denoising of event-camera streams."""

__version__ = "0.1.0"
