"""Seeded, vectorised generator of a realistic server fleet under the data contract.

FleetSimulator advances all servers together. Only the operational state machine (a
semi-Markov chain over the modes of fleet_model, with timed phases) and the AR(1) noise
run step by step; cycles, noise draws and metrics are computed in bulk per chunk. Random
numbers are drawn per block of steps keyed by (seed, block), so the output does not depend
on how the steps are chunked: advance(a) then advance(b) gives the rows of advance(a + b).
Offline steps produce no rows.

Rows as the daemon sees them: with tick_seconds below step_seconds (generate_fleet's
default: 5 s ticks in 300 s steps), each row is the daemon's aggregate of the step's ticks
(data_contract.AGGREGATION), simulated as a few sub-ticks (see fleet_ticks).
Fleet mixes: fleet_model.MIXES; "realistic" adds fleet_behaviours' cloud VM behaviours.
CLI: python metrics_generator.py --servers 200 --days 30 --seed 7 --out build/corpus/
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

import data_contract as dc
import fleet_behaviours as fb
import fleet_model as fm
import fleet_ticks as ft
from fleet_model import INCIDENT_KINDS, Array
from fleet_ticks import DAEMON_TICK_S, SUBTICKS

__all__ = ["INCIDENT_KINDS", "Fleet", "FleetSimulator", "Incident", "generate_fleet", "main"]

logger = logging.getLogger(__name__)

DEFAULT_START = "2025-01-06T00:00:00Z"
NEVER = np.iinfo(np.int64).max // 4  # phase end of a server in normal operation
BLOCK = 288  # random numbers are drawn per block of steps, keyed by (seed, block)
WEEK_NS = 7 * 86_400 * 10**9
CLEANUP_NS = 75 * 3_600 * 10**9  # weekly disk cleanup, Sundays 03:00 UTC (1970-01-04)
RAMP_RESTART = 0.35  # share of load ramps that end in a restart
U_EVENT, U_KIND, U_HOURS, U_BRANCH = range(4)  # uniform draws per (step, server)
TRACKED = ("mode", "kind", "t0", "t1", "boot", "disk_val", "disk_at", "disk_rate")
# AR channels from fm.MEM_FAST on are drawn after the others, so that adding them left the
# other channels' draws and the incidents of every seed unchanged
EARLY_AR = fm.MEM_FAST


@dataclass(frozen=True)
class Incident:
    """One incident: server, kind (INCIDENT_KINDS), start, end (None while still open).

    end is when service is restored (the server enters recovery).
    """

    server: str
    kind: str
    start: pd.Timestamp
    end: pd.Timestamp | None = None

    def as_dict(self) -> dict[str, str | None]:
        end = None if self.end is None else self.end.isoformat()
        return {
            "server": self.server,
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": end,
        }


@dataclass
class Fleet:
    """A generated fleet: the contract frame, its incidents and server name -> profile."""

    frame: pd.DataFrame
    incidents: list[Incident]
    servers: dict[str, str]
    seed: int
    days: float
    step_seconds: int
    start: pd.Timestamp
    end: pd.Timestamp  # end of the simulated span (exclusive)
    mix: str = "classic"
    tick_seconds: int | None = None  # rows aggregate ticks of this length (None: one tick)

    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable description of the run."""
        profiles: dict[str, list[str]] = {}
        for server, profile in self.servers.items():
            profiles.setdefault(profile, []).append(server)
        return {
            "contract_version": dc.CONTRACT_VERSION,
            "seed": self.seed,
            "n_servers": len(self.servers),
            "days": self.days,
            "step_seconds": self.step_seconds,
            "mix": self.mix,
            "tick_seconds": self.tick_seconds,
            "aggregation": dict(dc.AGGREGATION) if self.tick_seconds else None,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": len(self.frame),
            "profiles": profiles,
            "incidents": [incident.as_dict() for incident in self.incidents],
        }


class FleetSimulator:
    """A fleet that advances step by step; each advance() continues where the last stopped.

    servers maps name -> profile (sorted by name), incidents lists every incident so far,
    now is the timestamp of the next step. A streaming daemon can call advance(1) per tick,
    and steer it with force_incident (optionally fast and held critical) and release.
    mix: a key of fleet_model.MIXES. tick_seconds (a divisor of step_seconds, below it):
    each row is the daemon's aggregate of that step's ticks, from `subticks` sub-ticks (see
    the module docstring); None: each row is one instantaneous tick.
    """

    def __init__(
        self,
        n_servers: int = 20,
        seed: int = 42,
        step_seconds: int = 300,
        start: str | pd.Timestamp = DEFAULT_START,
        mix: str = "classic",
        tick_seconds: int | None = None,
        subticks: int = SUBTICKS,
    ) -> None:
        if n_servers < 1 or step_seconds < 1 or seed < 0:
            raise ValueError("n_servers and step_seconds must be >= 1, seed >= 0")
        if mix not in fm.MIXES:
            raise ValueError(f"unknown mix {mix!r}; one of {', '.join(fm.MIXES)}")
        self.seed, self.step_seconds, self.start = seed, step_seconds, _utc(start)
        self.mix, self._sub = mix, ft.subticks(step_seconds, tick_seconds, subticks)
        self.tick_seconds = tick_seconds if self._sub[0] > 1 else None
        self._start_ns, self._step_ns = self.start.as_unit("ns").value, step_seconds * 10**9
        self.servers = fm.fleet_servers(n_servers, mix)  # name -> profile, sorted by name
        self.names = np.array(list(self.servers))
        self.params = fm.draw_servers(list(self.servers.values()), _rng(seed, 0))
        self.behaviours: fb.FleetBehaviours | None = None
        if mix != "classic":  # the cloud VM behaviours (their own random streams)
            profiles = list(self.servers.values())
            self.behaviours = fb.FleetBehaviours(profiles, self.params, seed, self._start_ns)
            self.params = self.behaviours.params
        self.incidents: list[Incident] = []
        self.step = 0  # the next step to simulate
        self._per_day = 86_400 / step_seconds
        self._open: dict[int, int] = {}  # server index -> index of its open incident
        self._held = np.zeros(len(self.names), dtype=bool)  # stay critical until release()
        self._cache: tuple[Any, ...] = (-1,)
        self._init_state(_rng(seed, 1))

    def _init_state(self, rng: np.random.Generator) -> None:
        p, zeros = self.params, np.zeros(len(self.names), dtype=np.int64)
        self._state = {key: zeros.copy() for key in TRACKED}
        self._state["t1"][:] = NEVER
        self._state["boot"] = -np.rint(p.uptime * self._per_day).astype(np.int64)
        self._state["disk_val"] = p.disk.copy()
        self._state["disk_rate"] = p.disk_growth / self._per_day
        self._due = NEVER  # earliest step at which some server's phase ends
        n = len(self.names)
        early, late = (rng.standard_normal((n, k)) for k in (EARLY_AR, fm.N_AR - EARLY_AR))
        self._ar = np.hstack([early, late])
        self._ar_decay = np.exp(-self.step_seconds / 3600 / fm.AR_TAU_H)
        self._ar_ratio = self.step_seconds / 3600 / fm.AR_TAU_H  # step / time constant

    @property
    def now(self) -> pd.Timestamp:
        """Timestamp of the next step to simulate."""
        return self._ts(self.step)

    def advance(self, n_steps: int) -> pd.DataFrame:
        """Simulate n_steps more steps; their contract rows, by server then timestamp."""
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        day = max(1, int(self._per_day))
        chunks = [self._simulate(min(day, n_steps - i)) for i in range(0, n_steps, day)]
        return _frame(self.names, chunks or [self._simulate(0)])

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
        if mode not in (fm.INCIDENT, fm.CRITICAL):
            return False
        span = max(int(s["t1"][i[0]] - s["t0"][i[0]]), 1)
        severity = 1.0 if mode == fm.CRITICAL else min(max((g - s["t0"][i[0]]) / span, 0.0), 1.0)
        length = int(self._steps(np.array([(fm.PHASE_LOW + fm.PHASE_HIGH)[fm.RECOVERY] / 2]))[0])
        start = g - int(round((1 - severity) * length))
        s["mode"][i], s["t0"][i], s["t1"][i] = fm.RECOVERY, start, max(start + length, g + 1)
        if s["kind"][i[0]] == fm.FILL:
            self._clean_disk(i, g, 0.1)
        self._close(i, g)
        self._due = int(s["t1"].min())
        return True

    def _index(self, server: str) -> Array:
        index = np.flatnonzero(self.names == server)
        if index.size == 0:
            raise KeyError(f"unknown server {server!r}")
        return index

    def _simulate(self, k_steps: int) -> dict[str, Array]:
        """The next k_steps steps as (k_steps, n_servers) arrays (see _frame)."""
        steps = self.step + np.arange(k_steps, dtype=np.int64)
        clock = fm.make_clock(steps, self._start_ns, self._step_ns)
        normals, uniforms, sub_white = self._draws(self.step, k_steps)
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
        ar = self._advance_ar(normals[..., : fm.N_AR])
        self.step += k_steps
        white = normals[..., fm.N_AR :]
        if self._sub[0] > 1:  # aggregated steps: sub-tick noise, the AR's mean over the step
            white, ar = sub_white[0], ft.step_means(ar, previous, sub_white[1], self._ar_ratio)
        mods = None if self.behaviours is None else self.behaviours.modifiers(clock)
        out = fm.chunk_metrics(clock, track, self.params, ar, white, self.step_seconds, mods)
        return out | {"mode": track["mode"], "ns": clock.ns}

    # --- the state machine ---------------------------------------------------------

    def _snapshot(self) -> dict[str, Array]:
        return {key: values.copy() for key, values in self._state.items()}

    def _transition(self, g: int, fire: Array, u: Array, hazard: Array, cleanup: bool) -> None:
        """Step g: end due phases, start events that fire, run the weekly disk cleanup."""
        if g >= self._due:
            self._expire(g, u)
        idx = np.flatnonzero(fire & (self._state["mode"] == fm.NORMAL))
        if idx.size:
            cum = np.cumsum(hazard[idx], axis=1)
            event = (u[idx, U_KIND, None] * cum[:, -1:] > cum).sum(axis=1)
            self._held[idx] = False
            self._begin(idx, event, g, u[idx, U_HOURS])
        if cleanup:
            self._clean_disk(np.flatnonzero(self._state["kind"] != fm.FILL), g, 0.35)

    def _expire(self, g: int, u: Array) -> None:
        s = self._state
        idx = np.flatnonzero(s["t1"] <= g)
        mode, kind = s["mode"][idx], s["kind"][idx]
        critical = mode == fm.CRITICAL
        restart = critical & (
            (kind == fm.LEAK) | ((kind == fm.RAMP) & (u[idx, U_BRANCH] < RAMP_RESTART))
        )
        nxt = fm.NEXT_MODE[mode]
        nxt[restart] = fm.OFFLINE
        self._clean_disk(idx[(critical & (kind == fm.FILL)) | (mode == fm.MAINTENANCE)], g, 0.1)
        full = idx[(mode == fm.INCIDENT) & (kind == fm.FILL)]
        self._set_disk(full, g, self._disk_now(full, g), 0.0)
        self._close(idx[nxt == fm.RECOVERY], g)
        s["mode"][idx], s["t0"][idx] = nxt, g
        hours = fm.PHASE_LOW[nxt] + u[idx, U_HOURS] * (fm.PHASE_HIGH[nxt] - fm.PHASE_LOW[nxt])
        s["t1"][idx] = np.where(nxt == fm.NORMAL, NEVER, g + self._steps(hours))
        s["t1"][idx[(nxt == fm.CRITICAL) & self._held[idx]]] = NEVER  # held critical
        self._held[idx[nxt != fm.CRITICAL]] = False
        s["boot"][idx[nxt == fm.OFFLINE]] = g
        s["kind"][idx[(nxt == fm.OFFLINE) | (nxt == fm.NORMAL)]] = 0  # a restart ends effects
        self._due = int(s["t1"].min())

    def _begin(
        self, idx: Array, event: Array, g: int, u_hours: Array, length: Array | None = None
    ) -> None:
        """Start events (EVENTS indices) on servers idx at step g; length: steps of phase 1."""
        s, (low, high) = self._state, fm.EVENT_HOURS[event].T
        mode = fm.EVENT_MODE[event]
        s["mode"][idx], s["t0"][idx] = mode, g
        s["t1"][idx] = g + (self._steps(low + u_hours * (high - low)) if length is None else length)
        s["kind"][idx] = np.where(mode == fm.INCIDENT, event + 1, 0)
        s["boot"][idx[mode == fm.OFFLINE]] = g
        fill = idx[event + 1 == fm.FILL]
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

    def _hazard(self, clock: fm.Clock) -> Array:
        """(K, n, events): chance per step that each event starts (maintenance at night)."""
        window = np.ones((len(clock.steps), 1, len(fm.EVENTS)))
        night = (clock.hour >= 1) & (clock.hour < 5)
        window[:, 0, fm.EVENTS.index("maintenance")] = night * 6.0
        return window * self.params.rates[None] / self._per_day

    def _draws(self, g0: int, k_steps: int) -> tuple[Array, ...]:
        """(K, n, channels) normals and uniforms, and without sub-ticks None, else the
        (K, S, n, N_WHITE) sub-tick white noise and (K, n, N_AR) bridge normals; drawn per
        block keyed by (seed, block)."""
        last = (g0 + max(k_steps, 1) - 1) // BLOCK
        blocks = [self._block(b) for b in range(g0 // BLOCK, last + 1)]
        cut = slice(g0 % BLOCK, g0 % BLOCK + k_steps)
        normals, uniforms = (np.concatenate([b[j] for b in blocks])[cut] for j in (0, 1))
        if self._sub[0] == 1:
            return normals, uniforms, None
        sub = tuple(np.concatenate([b[2][j] for b in blocks])[cut] for j in (0, 1))
        return normals, uniforms, sub

    def _block(self, block: int) -> tuple[Array, ...]:
        if self._cache[0] != block:
            rng, n = _rng(self.seed, 2, block), len(self.names)
            normals = rng.standard_normal((BLOCK, n, EARLY_AR + fm.N_WHITE))
            uniforms = rng.random((BLOCK, n, 4))
            sub = None
            if self._sub[0] > 1:
                bridge = rng.standard_normal((BLOCK, n, EARLY_AR))
                sub = (ft.subtick_white(rng, (BLOCK, n), *self._sub), bridge)
            late = rng.standard_normal((2, BLOCK, n, fm.N_AR - EARLY_AR))  # innovations, bridge
            normals = np.insert(normals, [EARLY_AR], late[0], axis=2)
            if sub is not None:
                sub = (sub[0], np.concatenate([sub[1], late[1]], axis=2))
            self._cache = (block, normals, uniforms, sub)
        return self._cache[1:]

    def _advance_ar(self, innovations: Array) -> Array:
        """Unit-variance AR(1) series, one per channel with time constants fm.AR_TAU_H."""
        out = innovations * np.sqrt(1 - self._ar_decay**2)
        previous = self._ar
        for k in range(len(out)):
            out[k] += self._ar_decay * previous
            previous = out[k]
        self._ar = previous.copy()
        return out


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def _utc(value: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _strings(codes: Array, labels: Array) -> pd.Series:
    array = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(labels))
    return array.cast(pa.string()).to_pandas()


def _frame(names: Array, chunks: list[dict[str, Array]]) -> pd.DataFrame:
    """Contract rows of the chunks, by server then timestamp; offline steps are dropped."""
    ns = np.concatenate([c["ns"] for c in chunks])
    keep = (np.concatenate([c["mode"] for c in chunks]) != fm.OFFLINE).T.ravel()
    cols = {c: np.concatenate([x[c] for x in chunks]).T.ravel()[keep] for c in dc.METRIC_COLUMNS}
    stamps = np.tile(ns, len(names))[keep].view("datetime64[ns]")
    servers = np.repeat(np.arange(len(names)), len(ns))[keep]
    states = np.concatenate([c["state"] for c in chunks]).T.ravel()[keep]
    ids = {
        "timestamp": pd.DatetimeIndex(stamps).tz_localize("UTC"),
        "server_name": _strings(servers, names),
        "state": _strings(states, fm.STATE_LABELS),
    }
    return pd.DataFrame(ids | cols, copy=False)


def generate_fleet(
    n_servers: int = 20,
    days: float = 30.0,
    step_seconds: int = 300,
    seed: int = 42,
    start: str | pd.Timestamp = DEFAULT_START,
    progress: bool = False,
    mix: str = "classic",
    tick_seconds: int | None = DAEMON_TICK_S,
    subticks: int = SUBTICKS,
) -> Fleet:
    """Simulate n_servers for days at step_seconds; reproducible from seed.

    Rows aggregate tick_seconds ticks as the daemon does (None: one sample per step).
    """
    sim = FleetSimulator(n_servers, seed, step_seconds, start, mix, tick_seconds, subticks)
    total, day = int(round(days * 86_400 / step_seconds)), max(1, 86_400 // step_seconds)
    chunks = []
    with tqdm(total=total, disable=not progress, unit="step", desc="fleet") as bar:
        for done in range(0, total, day):
            chunks.append(sim._simulate(min(day, total - done)))
            bar.update(min(day, total - done))
    frame = _frame(sim.names, chunks or [sim._simulate(0)])
    logger.info("generated %d rows, %d incidents", len(frame), len(sim.incidents))
    return Fleet(
        frame,
        sim.incidents,
        sim.servers,
        seed,
        days,
        step_seconds,
        sim.start,
        sim.now,
        mix,
        sim.tick_seconds,
    )


def write_fleet(fleet: Fleet, out_dir: str | Path) -> dict[str, Path]:
    """Validate, then write server_metrics.parquet, metrics_metadata.json, server_mapping.json."""
    ok, errors = dc.validate_schema(fleet.frame)
    if not ok:
        raise dc.ContractError(errors, "generated fleet")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fleet.frame.to_parquet(out / "server_metrics.parquet", index=False)
    payloads = {
        "metrics_metadata.json": fleet.metadata(),
        "server_mapping.json": dc.create_server_mapping(fleet.servers),
    }
    for name, payload in payloads.items():
        (out / name).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return {name: out / name for name in ("server_metrics.parquet", *payloads)}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Generate contract training data for a fleet.")
    parser.add_argument("--servers", type=int, default=20, help="number of servers")
    parser.add_argument("--days", type=float, default=30.0, help="days to simulate")
    parser.add_argument("--step", type=int, default=300, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=42, help="random seed")
    parser.add_argument("--start", default=DEFAULT_START, help="first timestamp (UTC)")
    parser.add_argument(
        "--mix",
        choices=list(fm.MIXES),
        default="realistic",
        help="fleet mix: realistic (half idle, batch and cron VMs) or classic (7 profiles)",
    )
    parser.add_argument(
        "--tick",
        type=int,
        default=DAEMON_TICK_S,
        help="rows aggregate ticks of this many seconds, as the daemon does (0: one sample)",
    )
    parser.add_argument("--subticks", type=int, default=SUBTICKS, help="sub-ticks per step")
    parser.add_argument("--out", type=Path, default=Path("training"), help="output directory")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI: generate a fleet, validate it and write its three files."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    progress = not args.no_progress
    fleet = generate_fleet(
        args.servers,
        args.days,
        args.step,
        args.seed,
        args.start,
        progress,
        args.mix,
        args.tick or None,
        args.subticks,
    )
    for path in write_fleet(fleet, args.out).values():
        logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
