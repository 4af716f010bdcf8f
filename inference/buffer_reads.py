"""Reading the step buffers: readiness, which servers are due a forecast, and copies of
their windows (Snapshot, read by inference.windows.window_values).

Readiness: a server is ready once encoder_length closed steps have passed since its
first tick AND at least min_observed_share of the encoder window's steps hold ticks (a
host back after two days is not forecast from one observed step). Gaps are filled as
training fills them, in inference.windows.window_values.
"""

from __future__ import annotations

import numpy as np

from inference.buffer_ring import StepRing
from inference.windows import Snapshot


class StepReads(StepRing):
    """Readiness, take_due and snapshot over the ring (see this module's docstring)."""

    def closed_steps(self, now: float | None = None) -> np.ndarray:
        """(N,) closed steps each server holds since its first tick (0 before any)."""
        origin, first = self.origins(now), self.view("first")
        return np.where(origin >= first, origin - first + 1, 0)

    def observed_share(self, now: float | None = None) -> np.ndarray:
        """(N,) share of the encoder window's steps (ending at the origin) with ticks."""
        observed = self.view("count") > 0
        head, origin = self.view("head"), self.origins(now)
        # the slots not in the window: those of steps origin + 1 on, modulo the ring
        outside = (origin[:, None] + 1 + np.arange(self.ring - self.encoder_length)) % self.ring
        rows = np.arange(len(head))[:, None]
        counted = observed.sum(axis=1) - observed[rows, outside].sum(axis=1)
        return np.where(head >= 0, counted, 0) / self.encoder_length

    def warmup_progress(self, now: float | None = None) -> np.ndarray:
        """(N,) warmup in [0, 1]: closed steps / encoder_length."""
        return np.minimum(self.closed_steps(now) / self.encoder_length, 1.0)

    def ready(self, now: float | None = None) -> np.ndarray:
        """(N,) whether a server has a full encoder window, enough of it observed."""
        share = self.observed_share(now) >= self.min_observed_share - 1e-9
        return (self.closed_steps(now) >= self.encoder_length) & share

    def take_due(self, now: float | None = None) -> np.ndarray:
        """Rows of ready servers with a new origin, or changed closed steps, since the last
        call; remembers them as done."""
        origin = self.origins(now)
        due = self.view("dirty") | (origin != self.view("done"))
        rows = np.flatnonzero(due & self.ready(now))
        self.arrays["dirty"][rows] = False
        self.arrays["done"][rows] = origin[rows]
        return rows

    def mark_dirty(self, rows: np.ndarray | None = None) -> None:
        """Ask for a new forecast of these servers (all when rows is None)."""
        self.view("dirty")[slice(None) if rows is None else rows] = True

    def snapshot(
        self, rows: np.ndarray, now: float | None = None, length: int | None = None
    ) -> Snapshot:
        """Copies of the windows of rows: length (default encoder_length, at most history)
        closed steps to the origin."""
        length = self.encoder_length if length is None else length
        if not 0 < length <= self.history:
            raise ValueError(f"a window of {length} steps; these buffers keep {self.history}")
        last = self.origins(now, rows)
        steps = last[:, None] + np.arange(1 - length, 1)[None, :]
        where = (rows[:, None], steps % self.ring)
        a = self.arrays
        return Snapshot(
            servers=[self.names[r] for r in rows],
            last_step=last,
            agg=a["agg"][where],
            count=a["count"][where],
            state=a["state"][where],
            latest=a["cur_values"][rows],
            latest_sec=a["cur_sec"][rows],
        )
