"""Local recording: RTSP to crash-safe fragmented MP4 segments, and start-up recovery.

``ChannelRecorder`` (one thread per channel) feeds a ``SegmentWriter`` per connection; the
``RecorderPool`` hands their events to the asyncio loop; ``recover`` indexes what a crash left.
Scheduling, retention and playback drive these from the gateway side.
"""

from .events import RecordingEvents, RecordingGap, SegmentInfo, SegmentOpened
from .recorder import ChannelRecorder, RecorderHooks, RecorderPool, RecorderSettings, RecorderStatus
from .recovery import RecoveryReport, SegmentCatalog, recover
from .segment_path import SegmentName, decode_segment_path, encode_segment_path
from .writer import SegmentWriter, WriterSettings

__all__ = [
    "ChannelRecorder",
    "RecorderHooks",
    "RecorderPool",
    "RecorderSettings",
    "RecorderStatus",
    "RecordingEvents",
    "RecordingGap",
    "RecoveryReport",
    "SegmentCatalog",
    "SegmentInfo",
    "SegmentName",
    "SegmentOpened",
    "SegmentWriter",
    "WriterSettings",
    "decode_segment_path",
    "encode_segment_path",
    "recover",
]
