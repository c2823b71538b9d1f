"""Where a recording segment lives on disk, and what its path says about it.

Layout, all in UTC::

    <recordings>/<channel>/<YYYY-MM-DD>/<HH>/<YYYYMMDD>T<HHMMSS>.<mmm>Z.mp4

The name carries the segment's start to the millisecond and the first directory its channel, so
the disk describes itself: the SQLite index is only a cache of what these names (plus probing the
files for their length) say, and can be rebuilt from them.  Directory names sort in time order,
which lets start-up recovery skip whole days and hours it has already indexed.

Channel ids come from the cloud or the inventory and may contain any character; they are
percent-encoded into one safe path component (``/``, ``%``, a leading ``.`` and anything outside
a conservative set are escaped), and decoding insists on the canonical encoding so that one
channel has exactly one directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePath, PurePosixPath
from typing import Final
from urllib.parse import quote, unquote

SEGMENT_SUFFIX: Final = ".mp4"
# Characters kept as they are in a channel directory name (besides ASCII letters and digits).
CHANNEL_SAFE_CHARACTERS: Final = "-_.~@+=,"
MAX_CHANNEL_COMPONENT_BYTES: Final = 255  # NAME_MAX on Linux file systems
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
LAST_ENCODABLE_MS: Final = int(
    (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - EPOCH) / timedelta(milliseconds=1)
)

_FILE_NAME = re.compile(r"(\d{8})T(\d{6})\.(\d{3})Z\.mp4")
_DAY_DIRECTORY = re.compile(r"\d{4}-\d{2}-\d{2}")
_HOUR_DIRECTORY = re.compile(r"\d{2}")


@dataclass(frozen=True, slots=True, order=True)
class SegmentName:
    """A segment's identity as its path encodes it: channel and start (integer milliseconds).

    Milliseconds are kept as an integer so that encode/decode round-trips exactly; ``start``
    gives the float seconds the index and the hooks use.
    """

    channel: str
    start_ms: int

    @property
    def start(self) -> float:
        """Start as POSIX seconds (UTC), to the millisecond."""
        return self.start_ms / 1000

    @classmethod
    def at(cls, channel: str, start: float) -> SegmentName:
        """The name for a segment starting at ``start`` POSIX seconds, rounded to the millisecond."""
        return cls(channel, round(start * 1000))

    def relative_path(self) -> PurePosixPath:
        """``<channel>/<YYYY-MM-DD>/<HH>/<start>.mp4``, relative to the recordings directory."""
        return encode_segment_path(self)


def encode_channel(channel: str) -> str:
    """One path component naming ``channel``; raises ValueError for an empty or too long id."""
    if not channel:
        raise ValueError("a channel id cannot be empty")
    component = quote(channel, safe=CHANNEL_SAFE_CHARACTERS)
    if component.startswith("."):
        # "." and ".." would escape the layout; any leading dot would hide the directory.
        component = "%2E" + component[1:]
    if len(component.encode()) > MAX_CHANNEL_COMPONENT_BYTES:
        raise ValueError(f"channel id too long for a directory name: {channel[:40]!r}...")
    return component


def decode_channel(component: str) -> str:
    """The channel id a directory name encodes; raises ValueError unless it is the canonical form."""
    channel = unquote(component, errors="strict")
    if not channel or encode_channel(channel) != component:
        raise ValueError(f"not a channel directory name: {component!r}")
    return channel


def encode_segment_path(name: SegmentName) -> PurePosixPath:
    """The relative path of a segment; raises ValueError for times outside 1970..9999."""
    if not 0 <= name.start_ms <= LAST_ENCODABLE_MS:
        raise ValueError(f"segment start out of range: {name.start_ms} ms")
    seconds, millis = divmod(name.start_ms, 1000)
    moment = EPOCH + timedelta(seconds=seconds)
    file_name = f"{moment:%Y%m%dT%H%M%S}.{millis:03d}Z{SEGMENT_SUFFIX}"
    return PurePosixPath(encode_channel(name.channel), f"{moment:%Y-%m-%d}", f"{moment:%H}", file_name)


def decode_segment_path(relative: PurePath) -> SegmentName:
    """Read channel and start back from a relative segment path; ValueError if it is not one.

    The day and hour directories must agree with the file name: a file moved into the wrong
    folder is not silently accepted (the cleaner and recovery prune by folder).
    """
    parts = relative.parts
    if len(parts) != 4:
        raise ValueError(f"not a segment path (expected channel/day/hour/file): {relative}")
    channel_component, day, hour, file_name = parts
    match = _FILE_NAME.fullmatch(file_name)
    if match is None or not _DAY_DIRECTORY.fullmatch(day) or not _HOUR_DIRECTORY.fullmatch(hour):
        raise ValueError(f"not a segment path: {relative}")
    date_digits, time_digits, millis = match.groups()
    try:
        moment = datetime.strptime(date_digits + time_digits, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"not a valid time in segment name: {relative}") from None
    if day != f"{moment:%Y-%m-%d}" or hour != f"{moment:%H}":
        raise ValueError(f"segment file is not in its day/hour directory: {relative}")
    start_ms = (moment - EPOCH) // timedelta(seconds=1) * 1000 + int(millis)
    return SegmentName(decode_channel(channel_component), start_ms)


def is_day_directory(name: str) -> bool:
    """Whether a directory name looks like a ``YYYY-MM-DD`` day folder of the layout."""
    return _DAY_DIRECTORY.fullmatch(name) is not None


def is_hour_directory(name: str) -> bool:
    """Whether a directory name looks like an ``HH`` hour folder of the layout."""
    return _HOUR_DIRECTORY.fullmatch(name) is not None


def day_and_hour(start: float) -> tuple[str, str]:
    """The day and hour folder names holding segments that start at ``start`` (for pruning walks)."""
    moment = EPOCH + timedelta(milliseconds=round(start * 1000))
    return f"{moment:%Y-%m-%d}", f"{moment:%H}"


__all__ = [
    "SEGMENT_SUFFIX",
    "SegmentName",
    "day_and_hour",
    "decode_channel",
    "decode_segment_path",
    "encode_channel",
    "encode_segment_path",
    "is_day_directory",
    "is_hour_directory",
]
