"""An image's size and channels from its file's first bytes, without an image library:
what `cbrun init` picks image_size and color_mode from, and `cbrun data check` counts."""

from __future__ import annotations

import struct
from pathlib import Path

_HEAD = 65536  # a JPEG's frame header may follow its metadata segments


def header(path: Path) -> tuple[int, int, int] | None:
    """(height, width, channels) from a PNG, JPEG, GIF or BMP header, or None."""
    with path.open("rb") as handle:
        data = handle.read(_HEAD)
    if data.startswith(b"\x89PNG") and len(data) >= 26:
        width, height = struct.unpack(">II", data[16:24])
        # The colour type: 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA.
        channels = {0: 1, 4: 1, 2: 3, 3: 3, 6: 4}.get(data[25], 3)
        return height, width, channels
    if data.startswith((b"GIF87a", b"GIF89a")) and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return height, width, 3  # a palette of colours, decoded as RGB
    if data.startswith(b"BM") and len(data) >= 30:
        width, height = struct.unpack("<ii", data[18:26])
        bits = struct.unpack("<H", data[28:30])[0]
        return abs(height), width, {8: 1, 32: 4}.get(bits, 3)  # height < 0: top-down rows
    i = 2
    while data.startswith(b"\xff\xd8") and i + 9 < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return height, width, data[i + 9] if i + 9 < len(data) else 3
        i += 2 + length
    return None
