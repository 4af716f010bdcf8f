"""Per-server rolling buffers at model-step resolution: raw ticks in, 5-minute steps out.

Steps: step = epoch_seconds // step_seconds (training's time_idx). A server's newest step
(its head) is open; every step before it is closed. A forecast reads the last
encoder_length closed steps, so each server keeps a ring of encoder_length + 1 steps
(step s in slot s % ring). Ticks may arrive late, out of order, by up to late_steps steps
(default 36: 3 hours) behind the server's newest tick; older ones are counted as stale
and dropped. (History in time order, e.g. a backfill, is never late.)

Aggregation of one server's ticks within one step (data_contract.AGGREGATION):
- mean: the CPU shares, java_cpu, memory, swap, disk, network rates and load_average are
  gauges; their mean is the step's level (and the CPU shares still sum to 100);
- max: back_close_wait and front_close_wait count connections; the peak keeps a burst or a
  leak visible that a mean would halve, and stays an integer as the contract requires;
- last (by timestamp, not arrival): uptime_days and state, which describe the server as
  it is now.
A tick is identified by (server, timestamp to the second). The first copy applied wins;
later copies are counted as duplicates and change nothing, so retrying a batch is safe.
Ticks may arrive in any order within the late window: each lands in its own step. (The
late window bounds the memory of which seconds were seen: 40 bytes per step.)

Gaps: a closed step without ticks is filled as training fills gaps (state 'offline',
metrics carried forward; see training.dataset), in window_values().
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import data_contract as dc
from inference.ingest import STATE_CODES, Batch, FeedRejected

AGGREGATION = dc.AGGREGATION  # the one rule, defined in the data contract
MEAN, MAX, LAST = dc.MEAN_INDEX, dc.MAX_INDEX, dc.LAST_INDEX
OFFLINE = STATE_CODES["offline"]
N_METRICS = len(dc.METRIC_COLUMNS)
# (array name, its step axis: "ring" / "late" / None, per-step shape, dtype, fill value)
ARRAYS = (
    ("agg", "ring", (N_METRICS,), np.float32, 0),
    ("count", "ring", (), np.uint16, 0),
    ("last_sec", "ring", (), np.int16, -1),
    ("state", "ring", (), np.int8, 0),
    ("seen", "late", (5,), np.uint64, 0),  # 300 bits: which second of the step has a tick
    ("head", None, (), np.int64, -1),
    ("first", None, (), np.int64, np.iinfo(np.int64).max),
    ("cur_values", None, (N_METRICS,), np.float32, 0),
    ("cur_sec", None, (), np.int64, -1),
    ("cur_state", None, (), np.int8, 0),
    ("dirty", None, (), np.bool_, False),
)


@dataclass(frozen=True)
class Applied:
    """What one batch did: applied + duplicates + stale == received."""

    received: int
    applied: int
    duplicates: int
    stale: int
    new_servers: int


@dataclass(frozen=True)
class Snapshot:
    """Raw ring contents of B servers' encoder windows (see window_values)."""

    servers: list[str]
    last_step: np.ndarray  # (B,) the last closed step: the forecast origin
    agg: np.ndarray  # (B, E, 14)
    count: np.ndarray  # (B, E)
    state: np.ndarray  # (B, E)
    latest: np.ndarray  # (B, 14) each server's latest tick (fills a window without ticks)


class FleetBuffers:
    """The fleet's step buffers; not thread-safe (the daemon holds a lock around it)."""

    def __init__(
        self,
        encoder_length: int = 288,
        step_seconds: int = 300,
        max_servers: int = 10_000,
        late_steps: int = 36,
    ) -> None:
        if step_seconds > 300:
            raise ValueError("step_seconds above 300 does not fit the 300-bit tick map")
        self.encoder_length, self.step_seconds = encoder_length, step_seconds
        self.ring, self.max_servers = encoder_length + 1, max_servers
        self.late = min(late_steps, self.ring)
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self._allocate(0, 16)

    def __len__(self) -> int:
        return len(self.names)

    def view(self, name: str) -> np.ndarray:
        """One of ARRAYS for the registered servers (a view)."""
        return self.arrays[name][: len(self.names)]

    # --- growth -----------------------------------------------------------------------

    def shape(self, name: str, servers: int) -> tuple[int, ...]:
        """The shape of array name for this many servers."""
        _, axis, shape, _, _ = next(spec for spec in ARRAYS if spec[0] == name)
        steps = {"ring": (self.ring,), "late": (self.late,), None: ()}[axis]
        return (servers, *steps, *shape)

    def _allocate(self, used: int, capacity: int) -> None:
        grown = {}
        for name, _, _, dtype, fill in ARRAYS:
            grown[name] = np.full(self.shape(name, capacity), fill, dtype=dtype)
            if name in self.arrays:
                grown[name][:used] = self.arrays[name][:used]
        self.arrays = grown

    def register(self, names: list[str]) -> tuple[np.ndarray, int]:
        """Row of each name and how many servers are new; raises FeedRejected, changing
        nothing, if the new ones would pass max_servers."""
        new = [n for n in dict.fromkeys(names) if n not in self.index]
        if len(self.names) + len(new) > self.max_servers:
            first = new[self.max_servers - len(self.names)]
            problem = f"fleet limit of {self.max_servers} servers reached (max_servers)"
            error = {"index": names.index(first), "field": "server_name", "problem": problem}
            raise FeedRejected([error])
        needed, capacity = len(self.names) + len(new), len(self.arrays["head"])
        if needed > capacity:
            self._allocate(len(self.names), max(needed, min(capacity * 2, self.max_servers)))
        for name in new:
            self.index[name] = len(self.names)
            self.names.append(name)
        rows = np.fromiter((self.index[n] for n in names), dtype=np.int64, count=len(names))
        return rows, len(new)

    # --- applying a batch -------------------------------------------------------------

    def apply(self, batch: Batch) -> Applied:
        """Apply a validated batch; raises FeedRejected (changing nothing) past max_servers."""
        rows, n_new = self.register(batch.names)
        steps, secs = np.divmod(batch.seconds, self.step_seconds)
        a = self.arrays
        old_head, new_head = a["head"][rows], a["head"].copy()
        np.maximum.at(new_head, rows, steps)
        fresh = (steps > old_head - self.late) & (steps > new_head[rows] - self.ring)
        keep = fresh & self._unseen(rows, steps, secs, old_head)
        rows, steps, secs = rows[keep], steps[keep], secs[keep]
        values, states = batch.values[keep], batch.states[keep]
        np.minimum.at(a["first"], rows, steps)
        self._advance(new_head)
        self._remember(rows, steps, secs)
        stale, applied = len(batch) - int(fresh.sum()), int(keep.sum())
        if applied:
            self._aggregate(rows * self.ring + steps % self.ring, secs, values, states)
            self._update_current(rows, steps * self.step_seconds + secs, values, states)
            a["dirty"][rows[steps < a["head"][rows]]] = True
        return Applied(len(batch), applied, len(batch) - applied - stale, stale, n_new)

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
        a["dirty"][moved[old >= 0]] = True

    def _seen_words(self, rows: np.ndarray, steps: np.ndarray, secs: np.ndarray) -> tuple:
        words = (rows * self.late + steps % self.late) * 5 + (secs >> 6)
        return words, np.left_shift(np.uint64(1), (secs & 63).astype(np.uint64))

    def _unseen(
        self, rows: np.ndarray, steps: np.ndarray, secs: np.ndarray, old_head: np.ndarray
    ) -> np.ndarray:
        """Ticks not seen before (checked before the heads move) and first in the batch."""
        keys = (rows << 34) + steps * self.step_seconds + secs  # (server, epoch second)
        first_copy = np.zeros(len(keys), dtype=bool)
        first_copy[np.unique(keys, return_index=True)[1]] = True
        words, bits = self._seen_words(rows, steps, secs)
        window = (steps <= old_head) & (steps > old_head - self.late)  # slots hold these steps
        seen = np.zeros(len(keys), dtype=bool)
        seen[window] = (self.arrays["seen"].reshape(-1)[words[window]] & bits[window]) != 0
        return first_copy & ~seen

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

    # --- reading ----------------------------------------------------------------------

    def closed_steps(self) -> np.ndarray:
        """(N,) closed steps each server holds since its first tick (0 before any)."""
        head, first = self.view("head"), self.view("first")
        return np.where(head >= 0, head - np.minimum(first, head), 0)

    def warmup_progress(self) -> np.ndarray:
        """(N,) warmup in [0, 1]: closed steps / encoder_length."""
        return np.minimum(self.closed_steps() / self.encoder_length, 1.0)

    def ready(self) -> np.ndarray:
        """(N,) whether a server has a full encoder window of closed steps."""
        return self.closed_steps() >= self.encoder_length

    def take_dirty(self) -> np.ndarray:
        """Rows of ready servers whose closed steps changed since the last call; clears them."""
        rows = np.flatnonzero(self.view("dirty") & self.ready())
        self.arrays["dirty"][rows] = False
        return rows

    def mark_dirty(self, rows: np.ndarray | None = None) -> None:
        """Ask for a new forecast of these servers (all when rows is None)."""
        self.view("dirty")[slice(None) if rows is None else rows] = True

    def snapshot(self, rows: np.ndarray) -> Snapshot:
        """Copies of the encoder windows (the last encoder_length closed steps) of rows."""
        last = self.arrays["head"][rows] - 1
        steps = last[:, None] + np.arange(1 - self.encoder_length, 1)[None, :]
        where = (rows[:, None], steps % self.ring)
        a = self.arrays
        return Snapshot(
            servers=[self.names[r] for r in rows],
            last_step=last,
            agg=a["agg"][where],
            count=a["count"][where],
            state=a["state"][where],
            latest=a["cur_values"][rows],
        )


def _groups(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys of a sorted array and where each one's run starts."""
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return sorted_keys[starts], starts


def window_values(snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """(B, E, 14) float32 step values and (B, E) int8 state codes of a snapshot.

    Means are divided by their tick counts. Steps without ticks become state 'offline'
    with the metrics of the last step before them, as training fills gaps; at the window's
    start, those of the first step after them; in a window without any tick (a server
    back after a day away), its latest tick's.
    """
    values = snapshot.agg.astype(np.float32, copy=True)
    observed = snapshot.count > 0
    values[..., MEAN] /= np.maximum(snapshot.count, 1)[..., None]
    states = np.where(observed, snapshot.state, OFFLINE).astype(np.int8)
    positions = np.arange(observed.shape[1])[None, :]
    previous = np.maximum.accumulate(np.where(observed, positions, -1), axis=1)
    following = np.minimum.accumulate(
        np.where(observed, positions, observed.shape[1])[:, ::-1], axis=1
    )[:, ::-1]
    source = np.where(previous >= 0, previous, np.minimum(following, observed.shape[1] - 1))
    values = np.take_along_axis(values, source[..., None], axis=1)
    empty = ~observed.any(axis=1)
    values[empty] = snapshot.latest[empty][:, None, :]
    return values, states
