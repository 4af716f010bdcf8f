"""The fleet's behaviour model: server profiles, events, and how metrics follow from state.

Profiles hold each kind of server's baselines for the 14 contract metrics, its naming and
share of the fleet, and the rates (events per server per day) of what can start from
normal operation: slowly developing incidents, crashes, maintenance windows and drains.
The simulator (metrics_generator.FleetSimulator) moves each server through the modes below;
chunk_metrics turns a chunk of that simulated state into contract metrics and states (one
tick per step, or sub-ticks aggregated by the data contract's rule: see fleet_ticks).
MIXES: the classic seven profiles, or the realistic mix that adds cloud VMs whose
behaviours (fleet_behaviours) reach chunk_metrics as Modifiers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

import data_contract as dc

Array = np.ndarray
NORMAL, INCIDENT, CRITICAL, OFFLINE, MAINTENANCE, RECOVERY, DRAINED = range(7)  # modes
INCIDENT_KINDS: tuple[str, ...] = ("memory_leak", "disk_fill", "load_ramp", "iowait_storm", "crash")
EVENTS: tuple[str, ...] = (*INCIDENT_KINDS, "maintenance", "drain")
LEAK, FILL, RAMP, STORM = 1, 2, 3, 4  # a server's incident "kind": 1 + EVENTS index, 0 = none
# hours (low, high) of the first phase of each event, and the mode of that phase
EVENT_HOURS = np.array([(3, 12), (2, 10), (1, 4), (2, 6), (0.25, 1), (0.5, 2.5), (2, 8)])
EVENT_MODE = np.array([INCIDENT] * 4 + [OFFLINE, MAINTENANCE, DRAINED])
# the mode after each mode's phase ends; after critical, a memory leak and some load ramps
# restart (offline) instead of recovering in place
NEXT_MODE = np.array([NORMAL, CRITICAL, RECOVERY, RECOVERY, OFFLINE, NORMAL, NORMAL])
# hours (low, high) of the follow-up phases by mode: critical, restart (offline), recovery
PHASE_LOW = np.array([0, 0, 0.25, 0.1, 0, 0.5, 0])
PHASE_HIGH = np.array([0, 0, 0.75, 0.35, 0, 2.0, 0])
# AR(1) noise time constants: cpu fast/slow, mem (slow drift), io, net, mem fast (MEM_FAST)
AR_TAU_H = np.array([0.75, 8.0, 4.0, 0.33, 3.0, 5 / 60])
N_AR, N_WHITE = len(AR_TAU_H), 9  # unit-variance AR channels, white-noise channels
MEM_FAST = 5  # memory's short-lived noise around its level: a 5-minute time constant
MEM_NOISE = (0.5, 4.0)  # its std in the daemon's 5-minute steps, points: log-uniform per server
MEM_DRIFT = 1.5  # std of memory's slow drift (AR channel 2), points
COUNTER_WHITE = (7, 8)  # the white channels of back / front close-wait (see _network)
STATE_LABELS = np.array(sorted(dc.VALID_STATES))  # chunk_metrics' state codes index this


# --- profiles ------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """Baselines of one server profile; activity 1.0 is a busy weekday afternoon."""

    name: str
    prefix: str
    digits: int
    share: float  # share of the fleet
    cores: int  # load_average is per-core utilisation times this
    cpu: float  # user + sys % at activity 1.0
    sys_frac: float  # kernel share of user + sys
    iowait: float  # iowait % at activity 1.0
    java: float  # share of user + sys used by the JVM
    mem: float  # mem_used_pct at activity 0.7
    mem_swing: float  # extra memory points per unit of activity
    disk: tuple[float, float]  # range of the initial disk_usage_pct
    disk_growth: float  # disk_usage_pct points per day
    net_in: float  # MB/s at activity 1.0
    net_out: float
    back_cw: float  # mean back_close_wait at activity 1.0
    front_cw: float
    peak: float  # UTC hour of the daily peak
    amp: float  # depth of the daily cycle, 0..1
    spike: float  # weekday 09-11 morning bump, activity units
    weekend: float  # weekend activity factor
    rates: tuple[float, ...]  # events per day, in EVENTS order
    noise: float = 1.2  # white CPU noise per tick, points
    wobble: float = 1.0  # scale of the slow (AR) CPU noise


# fmt: off
# Profile(name, prefix, digits, share, cores, cpu, sys_frac, iowait, java, mem, mem_swing, disk,
#         disk_growth, net_in, net_out, back_cw, front_cw, peak, amp, spike, weekend,
#         rates: leak  disk  ramp  iowait crash maint  drain)
PROFILES: tuple[Profile, ...] = (
    Profile("ml_compute", "ppml", 4, 0.25, 32, 64, 0.10, 1.5, 0.80, 60, 12, (35, 60),
            0.40, 40, 15, 3, 1, 14, 0.35, 0.10, 0.75,
            (0.07, 0.03, 0.08, 0.00, 0.03, 0.035, 0.01)),
    Profile("web_api", "ppweb", 3, 0.25, 8, 38, 0.30, 0.8, 0.45, 46, 14, (25, 45),
            0.25, 20, 60, 14, 20, 12, 0.70, 0.35, 0.45,
            (0.06, 0.02, 0.10, 0.00, 0.03, 0.035, 0.04)),
    Profile("database", "ppdb", 3, 0.15, 16, 40, 0.25, 4.0, 0.10, 64, 10, (50, 72),
            0.60, 25, 35, 12, 6, 13, 0.60, 0.30, 0.50,
            (0.03, 0.07, 0.03, 0.12, 0.02, 0.035, 0.00)),
    Profile("etl_ingest", "ppetl", 3, 0.10, 16, 58, 0.20, 6.0, 0.85, 56, 16, (45, 70),
            0.90, 80, 20, 5, 2, 3, 0.75, 0.05, 0.90,
            (0.05, 0.10, 0.04, 0.03, 0.03, 0.035, 0.01)),
    Profile("risk_analytics", "pprisk", 3, 0.10, 24, 62, 0.12, 2.0, 0.85, 58, 16, (30, 55),
            0.40, 30, 10, 4, 2, 19, 0.65, 0.15, 0.35,
            (0.07, 0.02, 0.08, 0.00, 0.03, 0.035, 0.01)),
    Profile("generic", "ppgen", 3, 0.10, 4, 20, 0.25, 1.5, 0.20, 34, 8, (30, 60),
            0.30, 4, 4, 2, 2, 13, 0.50, 0.20, 0.60,
            (0.05, 0.05, 0.05, 0.02, 0.03, 0.035, 0.05)),
    Profile("conductor", "ppcon", 2, 0.05, 8, 24, 0.20, 0.6, 0.35, 40, 6, (20, 40),
            0.15, 5, 5, 4, 3, 11, 0.50, 0.25, 0.60,
            (0.06, 0.02, 0.06, 0.00, 0.03, 0.035, 0.04)),
)
# Cloud VMs as the Azure (Resource Central), Google and Alibaba trace studies describe them:
# mostly idle VMs, batch VMs whose jobs saturate the CPU for hours, small VMs with daily
# cron jobs. Their time-varying behaviour (bursts, job regimes, cron) is fleet_behaviours'.
VM_PROFILES: tuple[Profile, ...] = (
    Profile("idle_vm", "ppidle", 3, 0.0, 2, 2.0, 0.30, 0.3, 0.0, 22, 2, (15, 40),
            0.05, 0.01, 0.008, 0.4, 0.3, 14, 0.30, 0.00, 0.90,
            (0.01, 0.01, 0.00, 0.00, 0.01, 0.02, 0.00), noise=0.15, wobble=0.3),
    Profile("batch_vm", "ppbatch", 3, 0.0, 16, 96, 0.05, 1.0, 0.60, 45, 30, (30, 60),
            0.30, 10, 5, 2, 1, 12, 0.00, 0.00, 1.00,
            (0.02, 0.02, 0.00, 0.00, 0.02, 0.02, 0.00), noise=0.4, wobble=0.04),
    Profile("cron_vm", "ppcron", 3, 0.0, 4, 6.0, 0.25, 0.8, 0.0, 30, 3, (20, 50),
            0.20, 0.5, 0.3, 1, 1, 13, 0.40, 0.10, 0.80,
            (0.02, 0.02, 0.02, 0.00, 0.02, 0.03, 0.01), noise=0.4, wobble=0.5),
)
# fmt: on
PROFILE_BY_NAME: dict[str, Profile] = {p.name: p for p in (*PROFILES, *VM_PROFILES)}
# fleet mixes: share of the fleet per profile. classic: the seven server profiles (the
# live generator's default); realistic: half of the fleet idle, batch and cron VMs.
MIXES: dict[str, dict[str, float]] = {
    "classic": {p.name: p.share for p in PROFILES},
    "realistic": {p.name: p.share / 2 for p in PROFILES}
    | {"idle_vm": 0.25, "batch_vm": 0.12, "cron_vm": 0.13},
}


def fleet_mix(n_servers: int, mix: str = "classic") -> dict[str, int]:
    """Servers per profile: largest remainder on the shares, at least one each when n allows."""
    shares = MIXES[mix]
    quotas = np.array(list(shares.values())) * n_servers
    counts = np.floor(quotas).astype(int)
    order = np.argsort(-(quotas - counts), kind="stable")
    counts[order[: n_servers - counts.sum()]] += 1
    while n_servers >= len(shares) and (counts == 0).any():
        counts[np.argmax(counts)] -= 1
        counts[np.flatnonzero(counts == 0)[0]] += 1
    return {name: int(c) for name, c in zip(shares, counts, strict=True)}


def fleet_servers(n_servers: int, mix: str = "classic") -> dict[str, str]:
    """Deterministic server names -> profile name, sorted by name (e.g. ppml0001, ppdb001)."""
    servers = {}
    for name, count in fleet_mix(n_servers, mix).items():
        profile = PROFILE_BY_NAME[name]
        for i in range(1, count + 1):
            servers[f"{profile.prefix}{i:0{profile.digits}d}"] = profile.name
    return dict(sorted(servers.items()))


@dataclass(frozen=True)
class ServerTable:
    """Per-server parameters as arrays of shape (n_servers,); rates is (n_servers, events)."""

    cores: Array
    cpu: Array
    sys_frac: Array
    iowait: Array
    java: Array
    mem: Array
    mem_swing: Array
    disk: Array
    disk_growth: Array
    net_in: Array
    net_out: Array
    back_cw: Array
    front_cw: Array
    peak: Array
    amp: Array
    spike: Array
    weekend: Array
    swap: Array  # residual swap % while memory is normal
    uptime: Array  # days since boot at the start of the simulation
    rates: Array
    noise: Array
    wobble: Array
    zero: Array  # (n_servers, 14) bool: metrics the server's source does not report (0)
    mem_noise: Array  # memory's fast noise, points: its std per tick (see MEM_NOISE)


_DRAWN = ("disk", "swap", "uptime", "zero", "mem_noise")  # per server, not from the profile
_FROM_PROFILE = tuple(f.name for f in fields(ServerTable) if f.name not in _DRAWN)
# multiplicative per-server variation, uniform in [1 - j, 1 + j]
# fmt: off
_JITTER = {"cpu": 0.15, "iowait": 0.3, "mem_swing": 0.2, "disk_growth": 0.5, "net_in": 0.3,
           "net_out": 0.3, "back_cw": 0.3, "front_cw": 0.3, "amp": 0.1, "spike": 0.3}
# fmt: on


def draw_servers(profile_names: list[str], rng: np.random.Generator) -> ServerTable:
    """Per-server baselines: the profile's, varied by draws from rng."""
    profiles = [PROFILE_BY_NAME[name] for name in profile_names]
    n = len(profiles)
    base = {
        name: np.array([getattr(p, name) for p in profiles], dtype=np.float64)
        for name in _FROM_PROFILE
    }
    for name, j in _JITTER.items():
        base[name] *= rng.uniform(1 - j, 1 + j, n)
    low, high = np.array([p.disk for p in profiles]).T
    base["disk"] = rng.uniform(low, high)
    base["mem"] += rng.normal(0, 4, n)
    base["peak"] += rng.uniform(-1, 1, n)
    base["sys_frac"] += rng.uniform(-0.03, 0.03, n)
    base["java"] = np.minimum(base["java"] * rng.uniform(0.9, 1.08, n), 0.95)
    base["swap"] = rng.uniform(0, 1.5, n)
    base["uptime"] = rng.uniform(1, 250, n)
    base["rates"] = base["rates"] * rng.lognormal(0, 0.3, (n, 1))
    base["zero"] = np.zeros((n, len(dc.METRIC_COLUMNS)), dtype=bool)
    step_sd = 10 ** rng.uniform(*np.log10(MEM_NOISE), n)  # drawn last: the rest is unchanged
    base["mem_noise"] = step_sd / np.sqrt(step_mean_var(300 / 3600 / AR_TAU_H[MEM_FAST]))
    return ServerTable(**base)


def step_mean_var(ratio: Array) -> Array:
    """Variance of the mean over a step of a unit-variance AR(1) (Ornstein-Uhlenbeck)
    process; ratio = step / time constant. The daemon's 5-minute means keep this share."""
    return 2 * (ratio + np.expm1(-ratio)) / ratio**2


# --- metrics from the simulated state --------------------------------------------------


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
    """Time-varying behaviour from fleet_behaviours, as (K, n) arrays of one chunk."""

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
