"""A minimal PNG writer for 8-bit RGB / grayscale arrays.

Dataset generation is a hot path of the training sections, and Pillow's general-purpose PNG
encoder spends most of its time in Python-level bookkeeping for these tiny images; writing the
three chunks directly is ~2.5x faster and byte-for-byte deterministic. Any PNG reader decodes it.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(arr: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of a uint8 ``(h, w, 3)`` RGB or ``(h, w)`` grayscale array (no filtering)."""
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValueError(f"expected uint8 (h, w) or (h, w, 3), got {arr.dtype} {arr.shape}")
    h, w = arr.shape[:2]
    rows = np.zeros((h, 1 + arr[0].size), np.uint8)  # each scanline starts with filter type 0
    rows[:, 1:] = arr.reshape(h, -1)
    header = struct.pack(">IIBBBBB", w, h, 8, 2 if arr.ndim == 3 else 0, 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _chunk(b"IEND", b"")


def write_png(path: Path, arr: np.ndarray) -> None:
    Path(path).write_bytes(encode_png(arr))
