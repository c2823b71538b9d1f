"""Real baseline JPEG snapshots, encoded with PyAV's MJPEG encoder.

Each profile's snapshot is a colour-bar test card at that profile's resolution, with the bar order
rotated by channel so pictures of different channels differ. Encoding a 1080p frame takes tens of
milliseconds, so it runs in a worker thread on first request and the bytes are cached.
"""

from __future__ import annotations

import asyncio
import logging
from fractions import Fraction

import av

from .model import Resolution

_LOGGER = logging.getLogger(__name__)

# Full-range (JFIF) YUV of the eight classic colour bars: white, yellow, cyan, green,
# magenta, red, blue, black.
_BARS_YUV = (
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
    (16, 128, 128),
)


def _plane_bytes(width: int, height: int, line_size: int, component: int, rotation: int) -> bytes:
    """One plane of vertical colour bars, each row padded to the plane's line size."""
    bars = len(_BARS_YUV)
    row = bytearray()
    for bar in range(bars):
        start = bar * width // bars
        end = (bar + 1) * width // bars
        value = _BARS_YUV[(bar + rotation) % bars][component]
        row.extend(bytes([value]) * (end - start))
    row.extend(b"\x00" * (line_size - width))
    return bytes(row) * height


def encode_test_card_jpeg(resolution: Resolution, channel_index: int) -> bytes:
    """Encode one colour-bar frame as a JPEG (blocking: call from a worker thread)."""
    frame = av.VideoFrame(resolution.width, resolution.height, "yuvj420p")
    for component, plane in enumerate(frame.planes):
        plane.update(_plane_bytes(plane.width, plane.height, plane.line_size, component, channel_index))
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width = resolution.width
    encoder.height = resolution.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    packets = [*encoder.encode(frame), *encoder.encode(None)]
    if not packets:
        raise RuntimeError("mjpeg encoder produced no packet")
    return bytes(packets[0])


class SnapshotImages:
    """Lazily encoded, cached JPEG per (channel, resolution)."""

    def __init__(self) -> None:
        self._images: dict[tuple[int, Resolution], bytes] = {}
        self._lock = asyncio.Lock()

    async def jpeg(self, channel_index: int, resolution: Resolution) -> bytes:
        """The JPEG for this channel at this size, encoding it off the event loop once."""
        key = (channel_index, resolution)
        async with self._lock:
            image = self._images.get(key)
            if image is None:
                image = await asyncio.to_thread(encode_test_card_jpeg, resolution, channel_index)
                _LOGGER.debug(
                    "encoded %dx%d snapshot for channel %d (%d bytes)",
                    resolution.width,
                    resolution.height,
                    channel_index + 1,
                    len(image),
                )
                self._images[key] = image
            return image
