"""Contract metrics and states from a chunk of simulated state.

The simulator decides, per (step, server), the mode and incident of each server; this
module turns that into the 14 contract metrics and a state: a daily and weekly activity
cycle, incident severities, behaviours (fleet.behaviours, as Modifiers) and noise, one
tick per step, or sub-ticks aggregated by the data contract's rule (see fleet.ticks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import data_contract as dc
from fleet import Array
from fleet.events import (
    CRITICAL,
    DRAINED,
    FILL,
    INCIDENT,
    LEAK,
    MAINTENANCE,
    OFFLINE,
    RAMP,
    RECOVERY,
    STORM,
)
from fleet.noise import MEM_DRIFT, MEM_FAST
from fleet.servers import ServerTable

STATE_LABELS = np.array(sorted(dc.VALID_STATES))  # chunk_metrics' state codes index this


@dataclass(frozen=True)
class Clock:
    """The timestamps of one chunk of K steps, with the calendar features the model needs."""

    steps: Array  # (K,) global step numbers
    ns: Array  # (K,) ns since the epoch, UTC
    hour: Array  # fractional UTC hour
    hour_int: Array
    weekend: Array
    business: Array


def make_clock(steps: Array, start_ns: int, step_ns: int) -> Clock:
    """The calendar of the given global steps (data_contract.time_features, UTC)."""
    ns = start_ns + steps * step_ns
    feats = dc.time_features(pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC"))
    hour = (ns % (86_400 * 10**9)) / (3_600 * 10**9)
    weekend, business = feats["is_weekend"].to_numpy() == 1, feats["is_business_hours"] == 1
    return Clock(steps, ns, hour, feats["hour"].to_numpy(), weekend, business.to_numpy())


@dataclass(frozen=True)
class Modifiers:
    """Time-varying behaviour from fleet.behaviours, as (K, n) arrays of one chunk."""

    mult: Array  # activity multiplier (batch job regimes)
    cpu_add: Array  # CPU points added (idle VM bursts, cron jobs)
    mem: Array  # memory level that replaces the profile's model (NaN: keep it)
    restart_h: Array  # hours since the last restart at a deploy (inf: none)


@dataclass(frozen=True)
class _Conditions:
    """What the simulation decided for each (step, server), as (K, n) arrays."""

    act: Array  # activity: daily and weekly cycle times the operational mode's factor
    calm: Array  # scale of the noise (small in maintenance and while drained)
    leak: Array  # severity 0..1 of each incident kind
    fill: Array
    ramp: Array
    storm: Array
    drained: Array  # bool: taken out of service, near-zero activity
    age_h: Array  # hours since boot
    mem: Array  # memory level set by a behaviour (NaN: the profile's model)
    cpu_add: Array  # CPU points added by a behaviour


def chunk_metrics(
    clock: Clock,
    track: dict[str, Array],
    p: ServerTable,
    ar: Array,
    white: Array,
    step_s: int,
    mods: Modifiers | None = None,
) -> dict[str, Array]:
    """(K, n) contract metrics, and "state" codes into STATE_LABELS, of one chunk.

    track is the simulator's state per (step, server): mode, kind, t0 / t1 (steps where the
    phase began / ends), boot (step of the last boot), disk_val + disk_rate * (step - disk_at).
    ar is (K, n, N_AR) unit AR(1) noise, white (K, n, N_WHITE) standard normals: one tick
    per step. With white of shape (K, S, n, N_WHITE), each step is S sub-ticks aggregated by
    data_contract.aggregate_ticks; the state is the last sub-tick's, as in the daemon.
    """
    c = _conditions(clock, track, p, step_s, mods)
    sub = white.ndim == 4
    if sub:  # the sub-ticks of a step share its conditions and its slow noise
        c, ar = _Conditions(*(x[:, None] for x in vars(c).values())), ar[:, None]
    out = _cpu(c, p, ar, white) | _memory(c, p, ar, white) | _network(c, p, ar, white)
    g = clock.steps[:, None]
    disk = np.clip(track["disk_val"] + track["disk_rate"] * (g - track["disk_at"]), 1.0, 99.5)
    out["disk_usage_pct"] = disk[:, None] if sub else disk
    out["uptime_days"] = np.minimum(c.age_h // 24, 365).astype(np.int64)
    if p.zero.any():
        for i, col in enumerate(dc.METRIC_COLUMNS):
            out[col] = np.where(p.zero[:, i], 0, out[col])
    last = {k: v[:, -1] for k, v in out.items()} if sub else out
    states = _state_codes(clock, last, track["mode"])
    return (_aggregate(out) if sub else out) | {"state": states}


def _aggregate(subticks: dict[str, Array]) -> dict[str, Array]:
    """(K, S, n) sub-tick metrics -> (K, n) step values by the data contract's rule."""
    stacked = np.stack(np.broadcast_arrays(*(subticks[c] for c in dc.METRIC_COLUMNS)), axis=-1)
    steps = dc.aggregate_ticks(np.moveaxis(stacked, 1, 2))  # (K, n, S, 14) -> (K, n, 14)
    return {
        c: steps[..., i].astype(np.int64) if c in dc.INT_COLUMNS else steps[..., i]
        for i, c in enumerate(dc.METRIC_COLUMNS)
    }


def _conditions(
    clock: Clock, track: dict[str, Array], p: ServerTable, step_s: int, mods: Modifiers | None
) -> _Conditions:
    g, mode, kind = clock.steps[:, None], track["mode"], track["kind"]
    progress = np.clip((g - track["t0"]) / np.maximum(track["t1"] - track["t0"], 1), 0, 1)
    in_phase = [mode == INCIDENT, mode == CRITICAL, mode == RECOVERY]
    severity = np.select(in_phase, [progress, 1.0, 1 - progress], 0.0)
    sev = [np.where(kind == k, severity, 0.0) for k in (LEAK, FILL, RAMP, STORM)]
    factors = [mode == MAINTENANCE, mode == DRAINED, mode == RECOVERY]
    factor = np.select(factors, [0.15, 0.02, 0.55 + 0.45 * progress], 1.0)
    act = activity(clock.hour, clock.weekend, p)
    age_h = (g - track["boot"]) * (step_s / 3600)
    mem, cpu_add = np.full(act.shape, np.nan), np.zeros(act.shape)
    if mods is not None:
        act, mem, cpu_add = act * mods.mult, mods.mem, mods.cpu_add * factor
        age_h = np.minimum(age_h, mods.restart_h)
    calm = np.minimum(1.0, 3 * factor)
    return _Conditions(act * factor, calm, *sev, mode == DRAINED, age_h, mem, cpu_add)


def activity(hour: Array, weekend: Array, p: ServerTable) -> Array:
    """(K, n) load relative to a busy weekday: daily cycle, quieter weekends, 09-11 bump."""
    hour, weekend = hour[:, None], weekend[:, None]
    level = 1 - p.amp + p.amp * (0.5 + 0.5 * np.cos(2 * np.pi * (hour - p.peak) / 24))
    bump = np.exp(-0.5 * ((hour - 10.25) / 0.8) ** 2) * ~weekend
    return np.where(weekend, level * p.weekend, level) + p.spike * bump


def _cpu(c: _Conditions, p: ServerTable, ar: Array, w: Array) -> dict[str, Array]:
    noise = p.wobble * p.cpu * (0.05 * ar[..., 0] + 0.09 * ar[..., 1]) + p.noise * w[..., 0]
    busy = np.clip(p.cpu * c.act + c.calm * noise + c.cpu_add, 0.3, 97.0)
    busy += c.ramp * (98.5 - busy) + 4 * c.fill + 6 * c.leak**3  # leak: paging near the end
    iowait = p.iowait * (0.4 + 0.6 * c.act) * np.exp(0.35 * c.calm * ar[..., 3] + 0.1 * w[..., 1])
    iowait += c.storm * (50 - iowait) + 6 * c.fill + 8 * c.leak**3
    scale = np.minimum(1.0, 99.8 / (busy + iowait))
    busy, iowait = busy * scale, iowait * scale
    user, sys = busy * (1 - p.sys_frac), busy * p.sys_frac
    used = (busy + iowait) / 100  # run queue: busy and iowait, more than linear near saturation
    load = p.cores * used * (1 + 2 * np.maximum(used - 0.85, 0)) * (1 + 0.04 * w[..., 2])
    return {
        "cpu_user_pct": user,
        "cpu_sys_pct": sys,
        "cpu_iowait_pct": iowait,
        "cpu_idle_pct": np.maximum(100 - user - sys - iowait, 0.0),
        "java_cpu_pct": busy * np.clip(p.java * (1 + 0.03 * w[..., 3]), 0, 1),
        "load_average": np.maximum(load, 0.0),
    }


def _memory(c: _Conditions, p: ServerTable, ar: Array, w: Array) -> dict[str, Array]:
    """A level (activity, slow drift, refill after a reboot, or a behaviour's steps at
    deploys) plus short-lived noise around it; a leak pulls it up; swap only when high."""
    warm = 1 - 0.3 * np.exp(-c.age_h / 4)  # caches refill after a reboot
    level = (p.mem + p.mem_swing * (c.act - 0.7) + MEM_DRIFT * c.calm * ar[..., 2]) * warm
    level = np.where(np.isnan(c.mem), level, c.mem)  # flat between deploys
    mem = level + c.calm * p.mem_noise * ar[..., MEM_FAST]
    mem = np.where(c.drained, 6 + np.minimum(np.abs(w[..., 4]), 3), mem)
    mem = np.clip(mem, 1.0, 99.5)
    mem += c.leak * (97.5 - mem)
    swap = p.swap * (1 + 0.1 * ar[..., 2]) + 2.4 * np.maximum(mem - 82, 0)  # only when high
    return {"mem_used_pct": mem, "swap_used_pct": np.clip(swap, 0.0, 100.0)}


def _network(c: _Conditions, p: ServerTable, ar: Array, w: Array) -> dict[str, Array]:
    surge = (1 + 0.8 * c.ramp) * c.act
    net_in = p.net_in * surge * np.exp(0.15 * ar[..., 4] + 0.08 * w[..., 5])
    net_out = p.net_out * surge * np.exp(0.15 * ar[..., 4] + 0.08 * w[..., 6])
    stress = (1 + 4 * c.ramp + 3 * c.storm + 2 * c.leak) * c.act**2
    lam_back, lam_front = p.back_cw * stress, p.front_cw * stress  # ~Poisson counts
    back = np.rint(np.maximum(lam_back + np.sqrt(lam_back) * w[..., 7], 0)).astype(np.int64)
    front = np.rint(np.maximum(lam_front + np.sqrt(lam_front) * w[..., 8], 0)).astype(np.int64)
    return {
        "net_in_mb_s": net_in,
        "net_out_mb_s": net_out,
        "back_close_wait": back,
        "front_close_wait": front,
    }


def _state_codes(clock: Clock, out: dict[str, Array], mode: Array) -> Array:
    """determine_state on CPU used (100 - idle) and memory, flags from the simulated mode."""
    states = dc.determine_state(
        100 - out["cpu_idle_pct"],
        out["mem_used_pct"],
        clock.hour_int[:, None],
        clock.business[:, None],
        anomaly_score=(mode == CRITICAL) * 1.0,
        offline=mode == OFFLINE,
        maintenance=mode == MAINTENANCE,
        recovering=mode == RECOVERY,
    )
    return np.searchsorted(STATE_LABELS, states).astype(np.int8)
