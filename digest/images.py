"""An image's width and height, read from the first bytes of its file.

PNG, GIF, WebP and JPEG say their size near the start of the file (a JPEG
whose Exif orientation turns it by 90° is shown, and measured, turned), so
``digest add`` asks for only the first ``HEAD_BYTES`` of an article's image
(an HTTP range) and reads the size here, with no imaging library. Anything
else (SVG, AVIF, a truncated or broken header) gives None: the email then
shows the image at the column's width with its own proportions.
"""

from __future__ import annotations

import struct

HEAD_BYTES = 64 * 1024
# JPEG start-of-frame markers (they carry the size); not DHT (C4), JPG (C8), DAC (CC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers with no length field after them.
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def dimensions(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` in pixels, or None when the header is not understood."""
    size: tuple[int, int] | None
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        size = struct.unpack(">II", data[16:24])
    elif data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        size = struct.unpack("<HH", data[6:10])
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        size = _webp(data)
    elif data[:2] == b"\xff\xd8":
        size = _jpeg(data)
    else:
        size = None
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return int(size[0]), int(size[1])


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    """The frame's size, turned when the Exif orientation says the picture is shown rotated."""
    at = 2
    turned = False
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header seen
            return None
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker == 0xE1 and data[at + 4 : at + 10] == b"Exif\x00\x00":
            turned = _exif_orientation(data[at + 10 : at + 2 + length]) in (5, 6, 7, 8)
        if marker in _SOF:
            if at + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return (height, width) if turned else (width, height)
        at += 2 + length
    return None


def _exif_orientation(tiff: bytes) -> int:
    """The Exif Orientation tag (1-8) of a TIFF header block; 1 when absent or unreadable."""
    if tiff[:2] == b"II":
        order = "<"
    elif tiff[:2] == b"MM":
        order = ">"
    else:
        return 1
    try:
        (first,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[first : first + 2])
        for index in range(count):
            entry = first + 2 + 12 * index
            tag, kind, _n = struct.unpack(order + "HHI", tiff[entry : entry + 8])
            if tag == 0x0112 and kind == 3:  # Orientation, a SHORT
                return int(struct.unpack(order + "H", tiff[entry + 8 : entry + 10])[0])
    except struct.error:
        return 1
    return 1
