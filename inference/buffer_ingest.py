"""Raw ticks into the step buffers: a validated batch folded into each server's steps.

A tick is identified by (server, timestamp to the second). The first copy applied wins;
later copies are counted as duplicates and change nothing, so retrying a batch is safe.

Late ticks land in their own step anywhere in the ring:
- within late_steps (default 36: 3 hours) of the server's newest tick, a bitmap of the
  seconds seen (40 bytes per step) tells a copy from a new tick exactly;
- further back, a tick is applied when it is later than every tick its step holds (an
  empty step, or ticks arriving in time order, as a delayed queue or backfill sends
  them); one that is not cannot be told from a copy and is counted as stale;
- older than the ring: stale.
Stale ticks change nothing and are reported (the daemon logs them at warning level).

Aggregation of one server's ticks within one step (data_contract.AGGREGATION):
- mean: the CPU shares, java_cpu, memory, swap, disk, network rates and load_average are
  gauges; their mean is the step's level (and the CPU shares still sum to 100);
- max: back_close_wait and front_close_wait count connections; the peak keeps a burst or a
  leak visible that a mean would halve, and stays an integer as the contract requires;
- last (by timestamp, not arrival): uptime_days and state, which describe the server as
  it is now.

Past max_servers the records of new servers are rejected (named), those of known servers
still apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import data_contract as dc
from inference.buffer_ring import ARRAYS, N_METRICS, StepRing
from inference.ingest import Batch

MEAN, MAX, LAST = dc.MEAN_INDEX, dc.MAX_INDEX, dc.LAST_INDEX
# Values are stored as float32 sums: the contract leaves network rates unbounded, and a
# value past 1e30 (absurd for any metric) is stored as 1e30 so that no sum overflows.
VALUE_CAP = 1e30


@dataclass(frozen=True)
class Applied:
    """What one batch did: applied + duplicates + stale + len(rejected) == received;
    rejected lists {index, field, problem} of records not applied (the fleet limit)."""

    received: int
    applied: int
    duplicates: int
    stale: int
    new_servers: int
    rejected: list[dict[str, Any]] = field(default_factory=list)


class StepIngest(StepRing):
    """apply(): ticks into their steps, by the rules of this module's docstring."""

    def apply(self, batch: Batch, received_at: float) -> Applied:
        """Apply a validated batch received at received_at (epoch s); records of new
        servers past max_servers are rejected, the others applied."""
        rows, n_new = self.register(batch.names)
        rejected = _limit_errors(batch, rows < 0, self.max_servers)
        if rejected:
            batch, rows = batch.subset(rows >= 0), rows[rows >= 0]
        self.arrays["received"][rows] = int(received_at)
        steps, secs = np.divmod(batch.seconds, self.step_seconds)
        new_head = self.arrays["head"].copy()
        np.maximum.at(new_head, rows, steps)
        fresh = steps > new_head[rows] - self.ring  # still inside the ring
        new, unprovable = self._classify(rows, steps, secs, self.arrays["head"][rows])
        keep = fresh & new
        self._advance(new_head)
        applied = self._add(rows[keep], steps[keep], secs[keep], batch, keep, received_at)
        stale = int((~fresh | unprovable).sum())
        duplicates = len(batch) - applied - stale
        return Applied(len(batch) + len(rejected), applied, duplicates, stale, n_new, rejected)

    def _add(
        self,
        rows: np.ndarray,
        steps: np.ndarray,
        secs: np.ndarray,
        batch: Batch,
        keep: np.ndarray,
        received_at: float,
    ) -> int:
        """Fold the kept ticks into their steps; returns how many."""
        if not len(rows):
            return 0
        a, states = self.arrays, batch.states[keep]
        values = np.minimum(batch.values[keep], VALUE_CAP)
        np.minimum.at(a["first"], rows, steps)
        self._remember(rows, steps, secs)
        self._aggregate(rows * self.ring + steps % self.ring, secs, values, states)
        self._update_current(rows, steps * self.step_seconds + secs, values, states)
        a["dirty"][rows[steps <= self.origins(received_at, rows)]] = True  # closed steps
        return len(rows)

    def _advance(self, new_head: np.ndarray) -> None:
        """Move heads forward, clearing the ring slots of the steps that become new."""
        a = self.arrays
        moved = np.flatnonzero(new_head > a["head"])
        old = a["head"][moved]
        span = np.where(old < 0, 0, np.minimum(new_head[moved] - old, self.ring))
        rows = np.repeat(moved, span)
        offsets = np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span)
        steps = np.repeat(new_head[moved] - span + 1, span) + offsets
        for name, axis, _, _, fill in ARRAYS:
            if axis is not None:
                a[name][rows, steps % a[name].shape[1]] = fill
        a["head"][moved] = new_head[moved]

    def _seen_words(self, rows: np.ndarray, steps: np.ndarray, secs: np.ndarray) -> tuple:
        words = (rows * self.late + steps % self.late) * 5 + (secs >> 6)
        return words, np.left_shift(np.uint64(1), (secs & 63).astype(np.uint64))

    def _classify(
        self, rows: np.ndarray, steps: np.ndarray, secs: np.ndarray, old_head: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(new, unprovable), checked before the heads move. new: ticks not seen before
        and first in the batch. unprovable: behind the late window and not later than
        every tick their step holds, so perhaps copies (stale; see the module docstring)."""
        keys = (rows << 34) + steps * self.step_seconds + secs  # (server, epoch second)
        first_copy = np.zeros(len(keys), dtype=bool)
        first_copy[np.unique(keys, return_index=True)[1]] = True
        words, bits = self._seen_words(rows, steps, secs)
        window = (steps <= old_head) & (steps > old_head - self.late)  # slots hold these steps
        seen = np.zeros(len(keys), dtype=bool)
        seen[window] = (self.arrays["seen"].reshape(-1)[words[window]] & bits[window]) != 0
        behind = steps <= old_head - self.late
        newest = self.arrays["last_sec"].reshape(-1)[rows * self.ring + steps % self.ring]
        unprovable = behind & (secs <= newest)
        return first_copy & ~seen & ~unprovable, unprovable

    def _remember(self, rows: np.ndarray, steps: np.ndarray, secs: np.ndarray) -> None:
        """Mark applied ticks as seen, for the steps the late window still covers."""
        recent = steps > self.arrays["head"][rows] - self.late
        if recent.any():
            words, bits = self._seen_words(rows[recent], steps[recent], secs[recent])
            order = np.argsort(words, kind="stable")
            unique, starts = _groups(words[order])
            self.arrays["seen"].reshape(-1)[unique] |= np.bitwise_or.reduceat(bits[order], starts)

    def _aggregate(
        self, cells: np.ndarray, secs: np.ndarray, values: np.ndarray, states: np.ndarray
    ) -> None:
        """Fold ticks into their (server, slot) cells by the AGGREGATION rule."""
        a, order = self.arrays, np.lexsort((secs, cells))
        unique, starts = _groups(cells[order])
        ends = np.r_[starts[1:], len(order)]
        ordered = values[order]
        agg = a["agg"].reshape(-1, N_METRICS)
        a["count"].reshape(-1)[unique] += (ends - starts).astype(np.uint16)
        agg[unique[:, None], MEAN] += np.add.reduceat(ordered[:, MEAN], starts, axis=0)
        peaks = np.maximum.reduceat(ordered[:, MAX], starts, axis=0)
        agg[unique[:, None], MAX] = np.maximum(agg[unique[:, None], MAX], peaks)
        latest = order[ends - 1]  # the latest tick of each cell in this batch
        last_sec = a["last_sec"].reshape(-1)
        newer = secs[latest] > last_sec[unique]
        take, where = latest[newer], unique[newer]
        last_sec[where] = secs[take]
        a["state"].reshape(-1)[where] = states[take]
        agg[where[:, None], LAST] = values[take][:, LAST]

    def _update_current(
        self, rows: np.ndarray, seconds: np.ndarray, values: np.ndarray, states: np.ndarray
    ) -> None:
        """Each server's latest tick by timestamp: what /predict shows as current."""
        a = self.arrays
        order = np.lexsort((seconds, rows))
        rows_sorted = rows[order]
        last = order[np.flatnonzero(np.r_[rows_sorted[1:] != rows_sorted[:-1], True])]
        newer = last[seconds[last] > a["cur_sec"][rows[last]]]
        a["cur_sec"][rows[newer]] = seconds[newer]
        a["cur_values"][rows[newer]] = values[newer]
        a["cur_state"][rows[newer]] = states[newer]


def _limit_errors(batch: Batch, over: np.ndarray, limit: int) -> list[dict[str, Any]]:
    """{index, field, problem} of the records of new servers past the fleet limit."""
    problem = f"new server past the limit of {limit} servers (TFT_MAX_SERVERS)"
    return [
        {"index": int(i), "field": "server_name", "problem": problem}
        for i in batch.positions()[over].tolist()
    ]


def _groups(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys of a sorted array and where each one's run starts."""
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return sorted_keys[starts], starts
