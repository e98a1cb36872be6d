"""Reading gzip-compressed HDF5 datasets with every CPU: raw chunks by offset, inflated in threads.

h5py reads a dataset in one thread and holds its global lock while HDF5 inflates chunk after chunk, so
reading was the slowest part of loading a file. For the layout this project writes (chunked, shuffle then
deflate, or deflate alone), the chunk index h5py exposes (``get_chunk_info_by_coord``) gives each chunk's place
in the file; the chunks are read with ``os.pread``, inflated by ISA-L (``isal``: 2.7x zlib's speed on these
chunks) and unshuffled by a compiled loop, in threads (all three release the GIL). Any other layout
(contiguous, Blosc or other filters, checksums, a user block) goes through h5py as before.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence

import h5py
import numpy as np
from isal import isal_zlib
from numba import njit

from .threads import cpu_threads

_SHUFFLE, _DEFLATE = 2, 1  # HDF5 filter codes


def _pipeline(ds: h5py.Dataset) -> tuple[int, ...] | None:
    """The dataset's filter codes when it can be read by chunks here, else None."""
    if ds.chunks is None or len(ds.chunks) != 1 or ds.dtype.kind not in "iuf" or ds.file.userblock_size:
        return None
    plist = ds.id.get_create_plist()
    codes = tuple(plist.get_filter(i)[0] for i in range(plist.get_nfilters()))
    return codes if codes in ((_SHUFFLE, _DEFLATE), (_DEFLATE,)) else None


def read_ranges(datasets: Sequence[h5py.Dataset], start: int, stop: int) -> list[np.ndarray]:
    """``ds[start:stop]`` of each dataset (all of one file), read by chunks in threads where the layout allows.
    Raises OSError for a chunk that does not inflate to its size."""
    pipelines = [_pipeline(ds) for ds in datasets]
    if not all(pipelines) or stop <= start or datasets[0].file.driver != "sec2":
        return [ds[start:stop] for ds in datasets]
    outs = [np.empty(stop - start, ds.dtype) for ds in datasets]
    jobs = []  # (dataset index, chunk's first element, file offset, stored size, filter mask)
    for d, ds in enumerate(datasets):
        size = ds.chunks[0]
        for first in range(start // size * size, stop, size):
            info = ds.id.get_chunk_info_by_coord((first,))
            if info.byte_offset is None:  # never written: HDF5 gives the fill value
                return [ds[start:stop] for ds in datasets]
            jobs.append((d, first, info.byte_offset, info.size, info.filter_mask))
    fd = os.open(datasets[0].file.filename, os.O_RDONLY)
    try:
        with ThreadPoolExecutor(cpu_threads()) as pool:
            list(pool.map(lambda job: _chunk_into(fd, pipelines[job[0]], datasets[job[0]], outs[job[0]], start,
                                                  *job[1:]), jobs))
    finally:
        os.close(fd)
    return outs


def _chunk_into(fd: int, codes: tuple[int, ...], ds: h5py.Dataset, out: np.ndarray, start: int, first: int,
                offset: int, stored: int, mask: int) -> None:
    """Inflate (and unshuffle) one chunk, copying its part inside ``out``'s range into ``out``."""
    size, item = ds.chunks[0], ds.dtype.itemsize
    raw = os.pread(fd, stored, offset)
    if not mask & (1 << codes.index(_DEFLATE)):  # a set bit: HDF5 stored this chunk without the filter
        try:
            raw = isal_zlib.decompress(raw)
        except isal_zlib.error as err:
            raise OSError(f"chunk at {first} of {ds.name} does not inflate ({err})") from None
    if len(raw) != size * item:
        raise OSError(f"chunk at {first} of {ds.name} holds {len(raw)} bytes, not {size * item}")
    lo, hi = max(start, first), min(start + len(out), first + size)
    dst = out[lo - start:hi - start].view(np.uint8)
    if _SHUFFLE in codes and not mask & (1 << codes.index(_SHUFFLE)):
        _unshuffle(np.frombuffer(raw, np.uint8), item, lo - first, dst)
    else:
        dst[:] = np.frombuffer(raw, np.uint8)[(lo - first) * item:(hi - first) * item]


@njit(cache=True, nogil=True)
def _unshuffle(src: np.ndarray, item: int, skip: int, dst: np.ndarray) -> None:  # pragma: no cover - numba
    """Values ``skip`` on of a shuffled chunk (byte 0 of every value, then byte 1, ...) into ``dst``'s bytes."""
    size = len(src) // item
    for b in range(item):
        plane = src[b * size + skip:(b + 1) * size]
        for i in range(len(dst) // item):
            dst[i * item + b] = plane[i]
