"""The step buffers' storage: one row per server in fixed-shape arrays, each server's ring
of steps, the server registry, growth, and churn (see inference/buffers.py).

Each server keeps a ring of max(encoder_length, history_steps) + 1 steps (step s in slot
s % ring): the encoder_length closed steps a forecast reads, or the history_steps the
early-warning evidence reads (24 h and the 3 h before, to compare today with yesterday),
and the open head step. The 300-bit map of the seconds seen covers only the newest
late_steps of them.

Fleet limit and churn: past max_servers new servers get no row (their records are
rejected, named); evict() forgets servers from which nothing has been received (by
receipt time, so a long backfill evicts nothing) for a while.
"""

from __future__ import annotations

import numpy as np

import data_contract as dc

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
    ("received", None, (), np.int64, -1),  # wall clock (epoch s) of the last tick received
    ("done", None, (), np.int64, -1),  # origin of the last forecast taken (take_due)
)


class StepRing:
    """The arrays of ARRAYS for every registered server, and the registry of names.

    Methods taking now (epoch seconds) close a head step whose end + close_grace_s has
    passed; now=None closes steps only by later ticks."""

    def __init__(
        self,
        encoder_length: int = dc.STEPS_PER_DAY,
        step_seconds: int = dc.STEP_SECONDS,
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

    def origins(self, now: float | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """The last closed step of each server (or of rows): the forecast origin."""
        head = self.view("head") if rows is None else self.arrays["head"][rows]
        if now is None:
            return np.where(head >= 0, head - 1, -1)
        closed = (head + 1) * self.step_seconds + self.close_grace_s <= now
        return np.where(head >= 0, head - 1 + closed, -1)

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
