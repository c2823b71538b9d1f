"""TrackTimeline: the per-stream DTS repair the writer relies on, on plain integers."""

from __future__ import annotations

import itertools

from bridges.media.timestamps import TrackTimeline

TICKS = 90_000
FRAME = 3_600  # 25 fps at 90 kHz


def timeline() -> TrackTimeline:
    return TrackTimeline(
        ticks_per_second=TICKS, default_step=FRAME, jump_seconds=5.0, backward_tolerance_seconds=0.5
    )


def test_regular_timestamps_pass_unchanged() -> None:
    track = timeline()
    outputs = [track.place(1_000 + index * FRAME, index * 0.04) for index in range(50)]
    assert outputs == [1_000 + index * FRAME for index in range(50)]
    assert track.jumps == 0


def test_repeats_and_small_steps_back_are_refused_without_moving_the_timeline() -> None:
    track = timeline()
    assert track.place(0, 0.0) == 0
    assert track.place(FRAME, 0.04) == FRAME
    assert track.place(FRAME, 0.05) is None  # repeated DTS
    assert track.place(FRAME - 10, 0.06) is None  # a little back
    assert track.place(FRAME - TICKS // 2, 0.07) is None  # back by exactly the tolerance
    assert track.place(2 * FRAME, 0.08) == 2 * FRAME
    assert track.jumps == 0


def test_a_leap_forward_is_rebased_to_one_frame_later() -> None:
    track = timeline()
    for index in range(10):
        track.place(index * FRAME, index * 0.04)
    leaped = 9 * FRAME + 30 * TICKS
    assert track.place(leaped, 0.40) == 10 * FRAME  # the clock leapt, real time did not
    assert track.place(leaped + FRAME, 0.44) == 11 * FRAME  # and stays rebased
    assert track.jumps == 1


def test_a_leap_backward_beyond_the_tolerance_is_rebased_too() -> None:
    track = timeline()
    for index in range(10):
        track.place(100 * TICKS + index * FRAME, index * 0.04)
    assert track.place(10 * TICKS, 0.40) == 100 * TICKS + 10 * FRAME
    assert track.place(10 * TICKS + FRAME, 0.44) == 100 * TICKS + 11 * FRAME
    assert track.jumps == 1


def test_a_leap_after_real_silence_keeps_the_silence() -> None:
    """A camera that really sent nothing for 8 s: the file keeps an 8 s hole (file time = real time)."""
    track = timeline()
    track.place(0, 100.0)
    track.place(FRAME, 100.04)
    output = track.place(FRAME + 60 * TICKS, 108.04)
    assert output == FRAME + 8 * TICKS
    assert track.jumps == 1


def test_outputs_strictly_increase_whatever_comes_in() -> None:
    track = timeline()
    inputs = [0, FRAME, FRAME, 10 * TICKS, 10 * TICKS - 5, 3 * TICKS, 3 * TICKS + FRAME, 2**33, 5]
    outputs = [out for dts in inputs if (out := track.place(dts, 0.0)) is not None]
    assert all(later > earlier for earlier, later in itertools.pairwise(outputs))
