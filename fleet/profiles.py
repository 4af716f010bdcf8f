"""Kinds of simulated server (profiles) and the fleet mixes they are drawn in.

A profile holds one kind of server's baselines for the 14 contract metrics, its naming
and share of the fleet, and the rates (events per server per day, fleet.events.EVENTS)
of what can start from normal operation. MIXES: the classic seven profiles, or the
realistic mix that adds cloud VMs whose behaviours are fleet.behaviours'. Server names
are deterministic (they do not depend on the seed): a fleet of n servers always has the
same names, in the training corpus and in the live feed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
# cron jobs. Their time-varying behaviour (bursts, job regimes, cron) is fleet.behaviours'.
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
