"""Per-server parameters of a simulated fleet: each server's profile, varied per server.

draw_servers turns a list of profile names into a ServerTable, arrays of shape
(n_servers,), so the simulator and chunk_metrics compute every server at once. Servers
of one profile differ by seeded jitter around the profile's baselines, their own disk
level and uptime, and their memory noise.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

import data_contract as dc
from fleet import Array
from fleet.noise import AR_TAU_H, MEM_FAST, MEM_NOISE, step_mean_var
from fleet.profiles import PROFILE_BY_NAME


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
    ratio = dc.STEP_SECONDS / 3600 / AR_TAU_H[MEM_FAST]  # MEM_NOISE is per daemon step
    base["mem_noise"] = step_sd / np.sqrt(step_mean_var(ratio))
    return ServerTable(**base)
