"""Turning a camera's decoding timestamps into one the MP4 muxer accepts, without losing footage.

Cameras and the RTSP demuxer hand us DTS that can repeat (x264 with several slices per picture,
sent as one packet per slice), step back a little (stale packets, a re-synchronisation on the
first RTCP sender report) or leap (the camera's clock was set, a 32-bit RTP wrap).  The MP4
muxer refuses any DTS that does not increase, and a leap would leave a long hole in the file.

``TrackTimeline`` keeps one stream's output timeline strictly increasing and free of leaps:

* a step forward up to ``jump_seconds`` passes unchanged (an offset from an earlier rebase
  stays applied);
* a repeated DTS or a small step back (up to ``backward_tolerance_seconds``) is refused: the
  caller drops the packet and counts it (video callers first try to merge a repeat into the
  previous packet as another slice of the same picture);
* anything larger, forward or back, is a discontinuity and is *rebased*: the packet is placed
  one frame after the previous one, or later by the wall-clock time that really passed between
  the two packets, so that file time keeps following real time when the camera truly stopped
  sending for a while.  The segment goes on; nothing is cut, no keyframe has to be waited for.

Units are the stream's own time base (ticks): per-packet work is integer arithmetic only.
"""

from __future__ import annotations


class TrackTimeline:
    """One input stream's DTS mapped to a strictly increasing, jump-free output timeline."""

    __slots__ = (
        "_backward_tolerance",
        "_jump",
        "_last_arrival",
        "_ticks_per_second",
        "jumps",
        "last_input",
        "last_output",
        "offset",
        "step",
    )

    def __init__(
        self,
        *,
        ticks_per_second: float,
        default_step: int,
        jump_seconds: float,
        backward_tolerance_seconds: float,
    ) -> None:
        if default_step <= 0:
            raise ValueError("default_step must be positive")
        self._ticks_per_second = ticks_per_second
        self._jump = max(1, round(jump_seconds * ticks_per_second))
        self._backward_tolerance = max(0, round(backward_tolerance_seconds * ticks_per_second))
        self._last_arrival = 0.0
        self.last_input: int | None = None
        self.last_output = 0
        self.offset = 0
        self.step = default_step
        self.jumps = 0

    def place(self, dts: int, arrival: float) -> int | None:
        """The output DTS for an input DTS received at ``arrival`` (monotonic seconds).

        Returns None when the packet must be dropped (repeat or small step back); the timeline
        is then unchanged.
        """
        last = self.last_input
        if last is not None:
            delta = dts - last
            if 0 < delta <= self._jump:
                self.step = delta
            elif -self._backward_tolerance <= delta <= 0:
                return None
            else:
                self._rebase(dts, arrival)
        self.last_input = dts
        output = dts + self.offset
        self.last_output = output
        self._last_arrival = arrival
        return output

    def _rebase(self, dts: int, arrival: float) -> None:
        """Continue after the previous packet: one usual step, or the real time that passed."""
        elapsed = round((arrival - self._last_arrival) * self._ticks_per_second)
        self.offset = self.last_output + max(self.step, elapsed) - dts
        self.jumps += 1


__all__ = ["TrackTimeline"]
