"""FleetSimulator: a seeded, vectorised fleet that advances step by step.

It advances all servers together. Only the operational state machine (a semi-Markov
chain over the modes of fleet.events, with timed phases) and the AR(1) noise run step by
step; cycles, noise draws and metrics are computed in bulk per chunk (fleet.metrics).
Random numbers are drawn per block of steps keyed by (seed, block) (fleet.draws), so the
output does not depend on how the steps are chunked: advance(a) then advance(b) gives the
rows of advance(a + b). Offline steps produce no rows.

With tick_seconds below step_seconds, each row is the daemon's aggregate of the step's
ticks (data_contract.AGGREGATION), simulated as a few sub-ticks (see fleet.ticks). The
training corpus (fleet.generate) and the live feed (simfeed) both run this simulator.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

import data_contract as dc
from fleet import Array
from fleet import events as ev
from fleet import ticks as ft
from fleet.behaviours import FleetBehaviours
from fleet.draws import EARLY_AR, U_BRANCH, U_EVENT, U_HOURS, U_KIND, BlockDraws, keyed_rng
from fleet.events import INCIDENT_KINDS, Incident
from fleet.frame import contract_frame
from fleet.metrics import Clock, chunk_metrics, make_clock
from fleet.noise import AR_TAU_H, N_AR
from fleet.profiles import MIXES, fleet_servers
from fleet.servers import draw_servers

DEFAULT_START = "2025-01-06T00:00:00Z"
NEVER = np.iinfo(np.int64).max // 4  # phase end of a server in normal operation
WEEK_NS = 7 * 86_400 * 10**9
CLEANUP_NS = 75 * 3_600 * 10**9  # weekly disk cleanup, Sundays 03:00 UTC (1970-01-04)
RAMP_RESTART = 0.35  # share of load ramps that end in a restart
TRACKED = ("mode", "kind", "t0", "t1", "boot", "disk_val", "disk_at", "disk_rate")


class FleetSimulator:
    """A fleet that advances step by step; each advance() continues where the last stopped.

    servers maps name -> profile (sorted by name), incidents lists every incident so far,
    now is the timestamp of the next step. A streaming daemon can call advance(1) per tick,
    and steer it with force_incident (optionally fast and held critical) and release.
    mix: a key of fleet.profiles.MIXES. tick_seconds (a divisor of step_seconds, below it):
    each row is the daemon's aggregate of that step's ticks, from `subticks` sub-ticks (see
    the module docstring); None: each row is one instantaneous tick.
    """

    def __init__(
        self,
        n_servers: int = 20,
        seed: int = 42,
        step_seconds: int = dc.STEP_SECONDS,
        start: str | pd.Timestamp = DEFAULT_START,
        mix: str = "classic",
        tick_seconds: int | None = None,
        subticks: int = ft.SUBTICKS,
    ) -> None:
        if n_servers < 1 or step_seconds < 1 or seed < 0:
            raise ValueError("n_servers and step_seconds must be >= 1, seed >= 0")
        if mix not in MIXES:
            raise ValueError(f"unknown mix {mix!r}; one of {', '.join(MIXES)}")
        self.seed, self.step_seconds, self.start = seed, step_seconds, _utc(start)
        self.mix, self._sub = mix, ft.subticks(step_seconds, tick_seconds, subticks)
        self.tick_seconds = tick_seconds if self._sub[0] > 1 else None
        self._start_ns, self._step_ns = self.start.as_unit("ns").value, step_seconds * 10**9
        self.servers = fleet_servers(n_servers, mix)  # name -> profile, sorted by name
        self.names = np.array(list(self.servers))
        self.params = draw_servers(list(self.servers.values()), keyed_rng(seed, 0))
        self.behaviours: FleetBehaviours | None = None
        if mix != "classic":  # the cloud VM behaviours (their own random streams)
            profiles = list(self.servers.values())
            self.behaviours = FleetBehaviours(profiles, self.params, seed, self._start_ns)
            self.params = self.behaviours.params
        self.incidents: list[Incident] = []
        self.step = 0  # the next step to simulate
        self._per_day = 86_400 / step_seconds
        self._open: dict[int, int] = {}  # server index -> index of its open incident
        self._held = np.zeros(len(self.names), dtype=bool)  # stay critical until release()
        self._random = BlockDraws(seed, len(self.names), self._sub)
        self._init_state(keyed_rng(seed, 1))

    def _init_state(self, rng: np.random.Generator) -> None:
        p, zeros = self.params, np.zeros(len(self.names), dtype=np.int64)
        self._state = {key: zeros.copy() for key in TRACKED}
        self._state["t1"][:] = NEVER
        self._state["boot"] = -np.rint(p.uptime * self._per_day).astype(np.int64)
        self._state["disk_val"] = p.disk.copy()
        self._state["disk_rate"] = p.disk_growth / self._per_day
        self._due = NEVER  # earliest step at which some server's phase ends
        n = len(self.names)
        early, late = (rng.standard_normal((n, k)) for k in (EARLY_AR, N_AR - EARLY_AR))
        self._ar = np.hstack([early, late])
        self._ar_decay = np.exp(-self.step_seconds / 3600 / AR_TAU_H)
        self._ar_ratio = self.step_seconds / 3600 / AR_TAU_H  # step / time constant

    @property
    def now(self) -> pd.Timestamp:
        """Timestamp of the next step to simulate."""
        return self._ts(self.step)

    def advance(self, n_steps: int) -> pd.DataFrame:
        """Simulate n_steps more steps; their contract rows, by server then timestamp."""
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        day = max(1, int(self._per_day))
        chunks = [self.simulate_chunk(min(day, n_steps - i)) for i in range(0, n_steps, day)]
        return contract_frame(self.names, chunks or [self.simulate_chunk(0)])

    def force_incident(
        self, server: str, kind: str, hours: float | None = None, hold: bool = False
    ) -> Incident:
        """Start an incident of kind (INCIDENT_KINDS) on server at the next step.

        hours sets how long it builds up before turning critical (default: the middle of
        the kind's range); hold keeps the server critical from then on, until release().
        """
        index = self._index(server)
        event = np.array([INCIDENT_KINDS.index(kind)])
        length = None if hours is None else self._steps(np.array([float(hours)]))
        self._begin(index, event, self.step, np.array([0.5]), length)
        self._held[index] = hold
        return self.incidents[-1]

    def release(self, server: str) -> bool:
        """End server's incident at the next step, as an operator's fix would.

        A server building up an incident or critical recovers in place from its current
        severity (no jump), over the middle of the recovery range; a filling disk is
        cleaned up. Also ends a hold. False when the server has no incident in progress.
        """
        i, g, s = self._index(server), self.step, self._state
        self._held[i] = False
        mode = int(s["mode"][i[0]])
        if mode not in (ev.INCIDENT, ev.CRITICAL):
            return False
        span = max(int(s["t1"][i[0]] - s["t0"][i[0]]), 1)
        severity = 1.0 if mode == ev.CRITICAL else min(max((g - s["t0"][i[0]]) / span, 0.0), 1.0)
        length = int(self._steps(np.array([(ev.PHASE_LOW + ev.PHASE_HIGH)[ev.RECOVERY] / 2]))[0])
        start = g - int(round((1 - severity) * length))
        s["mode"][i], s["t0"][i], s["t1"][i] = ev.RECOVERY, start, max(start + length, g + 1)
        if s["kind"][i[0]] == ev.FILL:
            self._clean_disk(i, g, 0.1)
        self._close(i, g)
        self._due = int(s["t1"].min())
        return True

    def _index(self, server: str) -> Array:
        index = np.flatnonzero(self.names == server)
        if index.size == 0:
            raise KeyError(f"unknown server {server!r}")
        return index

    def simulate_chunk(self, k_steps: int) -> dict[str, Array]:
        """The next k_steps steps as (k_steps, n_servers) arrays (see fleet.frame)."""
        steps = self.step + np.arange(k_steps, dtype=np.int64)
        clock = make_clock(steps, self._start_ns, self._step_ns)
        normals, uniforms, sub_white = self._random.draws(self.step, k_steps)
        hazard = self._hazard(clock)
        fire = uniforms[..., U_EVENT] < hazard.sum(axis=2)
        events = fire.any(axis=1) | self._cleanups(clock.ns)
        at, snapshots = [0], [self._snapshot()]  # state changes: first step, state from then
        for k, g in enumerate(steps.tolist()):
            if g >= self._due or events[k]:
                self._transition(g, fire[k], uniforms[k], hazard[k], self._cleanups(clock.ns[k]))
                at.append(k)
                snapshots.append(self._snapshot())
        which = np.searchsorted(at, np.arange(k_steps), side="right") - 1
        track = {key: np.stack([x[key] for x in snapshots])[which] for key in TRACKED}
        previous = self._ar
        ar = self._advance_ar(normals[..., :N_AR])
        self.step += k_steps
        white = normals[..., N_AR:]
        if self._sub[0] > 1:  # aggregated steps: sub-tick noise, the AR's mean over the step
            white, ar = sub_white[0], ft.step_means(ar, previous, sub_white[1], self._ar_ratio)
        mods = None if self.behaviours is None else self.behaviours.modifiers(clock)
        out = chunk_metrics(clock, track, self.params, ar, white, self.step_seconds, mods)
        return out | {"mode": track["mode"], "ns": clock.ns}

    # --- the state machine ---------------------------------------------------------

    def _snapshot(self) -> dict[str, Array]:
        return {key: values.copy() for key, values in self._state.items()}

    def _transition(self, g: int, fire: Array, u: Array, hazard: Array, cleanup: bool) -> None:
        """Step g: end due phases, start events that fire, run the weekly disk cleanup."""
        if g >= self._due:
            self._expire(g, u)
        idx = np.flatnonzero(fire & (self._state["mode"] == ev.NORMAL))
        if idx.size:
            cum = np.cumsum(hazard[idx], axis=1)
            event = (u[idx, U_KIND, None] * cum[:, -1:] > cum).sum(axis=1)
            self._held[idx] = False
            self._begin(idx, event, g, u[idx, U_HOURS])
        if cleanup:
            self._clean_disk(np.flatnonzero(self._state["kind"] != ev.FILL), g, 0.35)

    def _expire(self, g: int, u: Array) -> None:
        s = self._state
        idx = np.flatnonzero(s["t1"] <= g)
        mode, kind = s["mode"][idx], s["kind"][idx]
        critical = mode == ev.CRITICAL
        restart = critical & (
            (kind == ev.LEAK) | ((kind == ev.RAMP) & (u[idx, U_BRANCH] < RAMP_RESTART))
        )
        nxt = ev.NEXT_MODE[mode]
        nxt[restart] = ev.OFFLINE
        self._clean_disk(idx[(critical & (kind == ev.FILL)) | (mode == ev.MAINTENANCE)], g, 0.1)
        full = idx[(mode == ev.INCIDENT) & (kind == ev.FILL)]
        self._set_disk(full, g, self._disk_now(full, g), 0.0)
        self._close(idx[nxt == ev.RECOVERY], g)
        s["mode"][idx], s["t0"][idx] = nxt, g
        hours = ev.PHASE_LOW[nxt] + u[idx, U_HOURS] * (ev.PHASE_HIGH[nxt] - ev.PHASE_LOW[nxt])
        s["t1"][idx] = np.where(nxt == ev.NORMAL, NEVER, g + self._steps(hours))
        s["t1"][idx[(nxt == ev.CRITICAL) & self._held[idx]]] = NEVER  # held critical
        self._held[idx[nxt != ev.CRITICAL]] = False
        s["boot"][idx[nxt == ev.OFFLINE]] = g
        s["kind"][idx[(nxt == ev.OFFLINE) | (nxt == ev.NORMAL)]] = 0  # a restart ends effects
        self._due = int(s["t1"].min())

    def _begin(
        self, idx: Array, event: Array, g: int, u_hours: Array, length: Array | None = None
    ) -> None:
        """Start events (EVENTS indices) on servers idx at step g; length: steps of phase 1."""
        s, (low, high) = self._state, ev.EVENT_HOURS[event].T
        mode = ev.EVENT_MODE[event]
        s["mode"][idx], s["t0"][idx] = mode, g
        s["t1"][idx] = g + (self._steps(low + u_hours * (high - low)) if length is None else length)
        s["kind"][idx] = np.where(mode == ev.INCIDENT, event + 1, 0)
        s["boot"][idx[mode == ev.OFFLINE]] = g
        fill = idx[event + 1 == ev.FILL]
        now = self._disk_now(fill, g)
        self._set_disk(fill, g, now, np.maximum(98.0 - now, 0) / (s["t1"][fill] - g))
        for i, e in zip(idx.tolist(), event.tolist(), strict=True):
            if e < len(INCIDENT_KINDS):
                self._close(np.array([i]), g)
                self._open[i] = len(self.incidents)
                self.incidents.append(Incident(str(self.names[i]), INCIDENT_KINDS[e], self._ts(g)))
        self._due = int(s["t1"].min())

    def _close(self, idx: Array, g: int) -> None:
        for i in idx.tolist():
            j = self._open.pop(i, None)
            if j is not None:
                self.incidents[j] = replace(self.incidents[j], end=self._ts(g))

    def _disk_now(self, idx: Array, g: int) -> Array:
        s = self._state
        return s["disk_val"][idx] + s["disk_rate"][idx] * (g - s["disk_at"][idx])

    def _set_disk(self, idx: Array, g: int, value: Any, rate: Any) -> None:
        s = self._state
        s["disk_val"][idx], s["disk_at"][idx], s["disk_rate"][idx] = value, g, rate

    def _clean_disk(self, idx: Array, g: int, keep: float) -> None:
        """Cleanup: keep this share of the usage above the server's initial level."""
        now, floor = self._disk_now(idx, g), self.params.disk[idx]
        value = np.where(now > floor, floor + keep * (now - floor), now)
        self._set_disk(idx, g, value, self.params.disk_growth[idx] / self._per_day)

    # --- time, randomness, noise ---------------------------------------------------

    def _ts(self, step: int) -> pd.Timestamp:
        return pd.Timestamp(self._start_ns + step * self._step_ns, unit="ns", tz="UTC")

    def _steps(self, hours: Array) -> Array:
        return np.maximum(1, np.rint(hours * 3600 / self.step_seconds)).astype(np.int64)

    def _cleanups(self, ns: Any) -> Any:
        """Whether the weekly cleanup time falls in (ns - step, ns]."""
        return (ns - CLEANUP_NS) // WEEK_NS != (ns - self._step_ns - CLEANUP_NS) // WEEK_NS

    def _hazard(self, clock: Clock) -> Array:
        """(K, n, events): chance per step that each event starts (maintenance at night)."""
        window = np.ones((len(clock.steps), 1, len(ev.EVENTS)))
        night = (clock.hour >= 1) & (clock.hour < 5)
        window[:, 0, ev.EVENTS.index("maintenance")] = night * 6.0
        return window * self.params.rates[None] / self._per_day

    def _advance_ar(self, innovations: Array) -> Array:
        """Unit-variance AR(1) series, one per channel with time constants AR_TAU_H."""
        out = innovations * np.sqrt(1 - self._ar_decay**2)
        previous = self._ar
        for k in range(len(out)):
            out[k] += self._ar_decay * previous
            previous = out[k]
        self._ar = previous.copy()
        return out


def _utc(value: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
