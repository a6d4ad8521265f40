"""Time left of a running job, from the progress a page has watched it make (pure functions, no clock inside).

A job's bar does not move while its worker imports PyTorch, loads a model or prepares a dataset, and then
moves by the image or the step. An estimate from the time since the job started counts that start-up as if it
were work and swings wildly (100 s, 3 min, 6 s). Here the rate is measured only between progress changes the
page saw itself: from the first change it watched to the latest one. No estimate is given before two changes
a few seconds apart, and an estimate that has run out is never shown as "about 0 s".
"""
from __future__ import annotations

from dataclasses import dataclass

MIN_SPAN_S = 4.0  # seconds of watched progress before a rate means anything
MIN_GAIN = 0.01  # and at least 1% of the bar gained in that time
ALMOST_DONE = 0.9  # past this, an overdue estimate reads "finishing"


@dataclass(frozen=True)
class Track:
    """What a page saw of one job's progress: the first value, the first change and the latest change."""

    first_t: float
    first_p: float
    start_t: float | None = None  # the first change watched (the rate is measured from here)
    start_p: float | None = None
    last_t: float | None = None  # the latest change watched
    last_p: float | None = None


def observe(track: Track | None, now: float, progress: float) -> Track:
    """The track after seeing `progress` at time `now` (seconds, any fixed origin)."""
    if track is None:
        return Track(now, progress)
    latest = track.last_p if track.last_p is not None else track.first_p
    if progress < latest:  # went backwards (a retried step): start watching again
        return Track(now, progress)
    if progress == latest:
        return track
    if track.start_t is None:
        return Track(track.first_t, track.first_p, now, progress, now, progress)
    return Track(track.first_t, track.first_p, track.start_t, track.start_p, now, progress)


def seconds_left(track: Track | None, now: float) -> float | None:
    """Seconds until the bar is full at the watched rate (0 when overdue); None while no rate is known."""
    if track is None or track.start_t is None or track.last_t is None:
        return None
    # observe() sets start_t/start_p and last_t/last_p in pairs
    assert track.start_p is not None and track.last_p is not None
    span, gain = track.last_t - track.start_t, track.last_p - track.start_p
    if span < MIN_SPAN_S or gain < MIN_GAIN:
        return None
    rate = gain / span
    return max(0.0, (1.0 - track.last_p) / rate - (now - track.last_t))


def _rounded(seconds: float) -> str:
    if seconds < 55:
        return f"about {max(5, 5 * round(seconds / 5))} s left"
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return f"about {minutes} min left"
    hours = seconds / 3600
    return f"about {hours:.1f} h left"


def describe(track: Track | None, now: float, progress: float) -> str:
    """Words for the time left: '' when unknown, never 'about 0 s left'."""
    left = seconds_left(track, now)
    if left is None:
        return ""
    if left <= 0 or progress >= 1.0:
        return "finishing" if progress >= ALMOST_DONE else ""
    if left < 5:
        return "less than 5 s left"
    return _rounded(left)
