"""Per-server rolling buffers at model-step resolution: raw ticks in, 5-minute steps out.

Steps: step = epoch_seconds // step_seconds (training's time_idx). A server's newest step
(its head) is open until a tick of a later step arrives, or until the wall clock passes
its end by close_grace_s (a source that sends one record per step is then forecast from
its newest step, not the one before). Every step before the head is closed. A forecast
reads the encoder_length closed steps ending at the server's origin (its last closed
step), and the early-warning evidence reads history_steps of them (24 h and the 3 h
before, to compare today with yesterday), so each server keeps a ring of
max(encoder_length, history_steps) + 1 steps (step s in slot s % ring).

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
A tick is identified by (server, timestamp to the second). The first copy applied wins;
later copies are counted as duplicates and change nothing, so retrying a batch is safe.

Readiness: a server is ready once encoder_length closed steps have passed since its
first tick AND at least min_observed_share of the encoder window's steps hold ticks (a
host back after two days is not forecast from one observed step). Gaps are filled as
training fills them, in inference.windows.window_values.

Fleet limit and churn: past max_servers the records of new servers are rejected (named),
those of known servers still apply; evict() forgets servers from which nothing has been
received (by receipt time, so a long backfill evicts nothing) for a while.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import data_contract as dc
from inference.ingest import Batch
from inference.windows import Snapshot

AGGREGATION = dc.AGGREGATION  # the one rule, defined in the data contract
MEAN, MAX, LAST = dc.MEAN_INDEX, dc.MAX_INDEX, dc.LAST_INDEX
N_METRICS = len(dc.METRIC_COLUMNS)
# Values are stored as float32 sums: the contract leaves network rates unbounded, and a
# value past 1e30 (absurd for any metric) is stored as 1e30 so that no sum overflows.
VALUE_CAP = 1e30
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
    ("received", None, (), np.int64, -1),  # wall clock (epoch s) of the last tick received
    ("done", None, (), np.int64, -1),  # origin of the last forecast taken (take_due)
)


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


class FleetBuffers:
    """The fleet's step buffers; not thread-safe (the daemon holds a lock around it).

    Methods taking now (epoch seconds) close a head step whose end + close_grace_s has
    passed; now=None closes steps only by later ticks."""

    def __init__(
        self,
        encoder_length: int = 288,
        step_seconds: int = 300,
        max_servers: int = 10_000,
        late_steps: int = 36,
        close_grace_s: float = 30.0,
        min_observed_share: float = 0.8,
        history_steps: int = 0,
    ) -> None:
        if step_seconds > 300:
            raise ValueError("step_seconds above 300 does not fit the 300-bit tick map")
        self.encoder_length, self.step_seconds = encoder_length, step_seconds
        self.history = max(encoder_length, history_steps)  # closed steps kept to the origin
        self.ring, self.max_servers = self.history + 1, max_servers
        self.late = min(late_steps, self.ring)
        self.close_grace_s, self.min_observed_share = close_grace_s, min_observed_share
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self._allocate(0, 16)

    def __len__(self) -> int:
        return len(self.names)

    def view(self, name: str) -> np.ndarray:
        """One of ARRAYS for the registered servers (a view)."""
        return self.arrays[name][: len(self.names)]

    # --- growth and churn -------------------------------------------------------------

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

    def clear(self) -> None:
        """Forget every server (a restore that failed half-way starts empty)."""
        self.names, self.index = [], {}
        self._allocate(0, 16)

    def register(self, names: list[str]) -> tuple[np.ndarray, int]:
        """Row of each name (-1 for new servers past max_servers) and how many are new."""
        new = [n for n in dict.fromkeys(names) if n not in self.index]
        new = new[: max(self.max_servers - len(self.names), 0)]
        needed, capacity = len(self.names) + len(new), len(self.arrays["head"])
        if needed > capacity:
            self._allocate(len(self.names), max(needed, min(capacity * 2, self.max_servers)))
        for name in new:
            self.index[name] = len(self.names)
            self.names.append(name)
        get = self.index.get
        rows = np.fromiter((get(n, -1) for n in names), dtype=np.int64, count=len(names))
        return rows, len(new)

    def evict(self, before: float) -> tuple[np.ndarray, list[str]]:
        """Forget servers last received before this time (epoch s); returns the old rows
        of the servers kept, in their new order, and the names forgotten."""
        n, gone = len(self.names), self.view("received") < before
        keep = np.flatnonzero(~gone)
        if not gone.any():
            return keep, []
        for name, _, _, _, fill in ARRAYS:
            array = self.arrays[name]
            array[: len(keep)] = array[keep]
            array[len(keep) : n] = fill
        evicted = [self.names[r] for r in np.flatnonzero(gone).tolist()]
        self.names = [self.names[r] for r in keep.tolist()]
        self.index = {name: row for row, name in enumerate(self.names)}
        return keep, evicted

    # --- applying a batch -------------------------------------------------------------

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

    # --- reading ----------------------------------------------------------------------

    def origins(self, now: float | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """The last closed step of each server (or of rows): the forecast origin."""
        head = self.view("head") if rows is None else self.arrays["head"][rows]
        if now is None:
            return np.where(head >= 0, head - 1, -1)
        closed = (head + 1) * self.step_seconds + self.close_grace_s <= now
        return np.where(head >= 0, head - 1 + closed, -1)

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
