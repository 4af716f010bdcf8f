"""Tick and clock arithmetic: how simulated time follows the wall clock.

The daemon aggregates ticks into 5-minute steps (STEP_SECONDS). The simulator runs at one
fixed tick length for its whole life, a divisor of 300 s so that every 5-minute step holds
the same whole number of ticks: the largest divisor not above interval * speed. With
--speed 120 and --interval 5 a wall interval covers 600 simulated seconds, the tick is
300 s and each interval sends the 2 ticks it covered; no step is skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from data_contract import STEP_SECONDS

STEP = pd.Timedelta(seconds=STEP_SECONDS)
TICK_CHOICES: tuple[int, ...] = tuple(
    d for d in range(1, STEP_SECONDS + 1) if STEP_SECONDS % d == 0
)


def tick_seconds(interval: float, speed: float) -> int:
    """Simulated seconds per tick: the largest divisor of 300 <= interval * speed (min 1)."""
    covered = interval * speed
    return max([d for d in TICK_CHOICES if d <= covered + 1e-9], default=1)


def backfill_window(now: pd.Timestamp, hours: float) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(start, end) of the backfill: end is now floored to a 5-minute boundary.

    hours is rounded to whole 5-minute steps; start = end - that many steps.
    """
    end = pd.Timestamp(now).tz_convert("UTC").floor(STEP)
    return end - int(round(hours * 3600 / STEP_SECONDS)) * STEP, end


@dataclass(frozen=True)
class StreamClock:
    """Simulated time during streaming: equal to the wall clock when streaming starts,
    then running speed times faster. wall_start is epoch seconds, mono_start the
    time.monotonic() reading taken at the same moment."""

    wall_start: float
    mono_start: float
    speed: float
    tick: int

    def target(self, mono_now: float) -> float:
        """Simulated epoch seconds that the wall clock has reached."""
        return self.wall_start + max(mono_now - self.mono_start, 0.0) * self.speed

    def steps_due(self, sim_now: pd.Timestamp, mono_now: float) -> int:
        """Ticks with timestamp <= target not yet simulated; sim_now is the next tick's time."""
        behind = self.target(mono_now) - sim_now.value / 1e9
        return 0 if behind < 0 else math.floor(behind / self.tick + 1e-9) + 1


def next_wake(mono_start: float, interval: float, mono_now: float) -> float:
    """Seconds to sleep until the next whole interval after mono_start (never negative)."""
    elapsed = max(mono_now - mono_start, 0.0)
    return (math.floor(elapsed / interval + 1e-9) + 1) * interval - elapsed
